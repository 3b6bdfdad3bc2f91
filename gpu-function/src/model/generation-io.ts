// Names and meaning of the generation graph's inputs and outputs (model.onnx). The graph
// builder and the engine both read them from here, so they cannot drift apart.
//
// One run decodes up to `max_steps` tokens for a batch of rows: the first step consumes
// `input_ids` (prompts, left-padded, on a prefill run; each row's last sampled token
// afterwards), every step samples one token per row in the graph and feeds it to the next.
// The cache goes in once and comes out once per run.

export const GEN = {
  /** int64 [batch, seq]: tokens not yet in the cache. */
  inputIds: 'input_ids',
  /** int64 [batch, seq]: their positions (each row its own; padding may use any valid one). */
  positionIds: 'position_ids',
  /**
   * int64 [batch, past + seq]: 1 for real cache entries and tokens, 0 for padding. Rows of
   * different lengths share a batch right-aligned: a row's padding is on its left.
   */
  attentionMask: 'attention_mask',
  /** int64 [batch]: tokens each row may still produce in this run (>= 1 for live rows). */
  budget: 'budget',
  /** int64 scalar >= 1: steps (tokens) to decode at most. */
  maxSteps: 'max_steps',
  /** float32 [max_steps, batch]: one uniform in [0, 1) per step and row (host PRNG). */
  uniforms: 'uniforms',
  /** float32 [batch]: 0 = greedy. */
  temperature: 'temperature',
  /** int64 [batch]: 0 = off. */
  topK: 'top_k',
  /** float32 [batch]: 1 = off. */
  topP: 'top_p',
  /** float32 [batch]: 1 = off. */
  repetitionPenalty: 'repetition_penalty',
  /** int64 [batch, seen]: ids the repetition penalty applies to (prompt + output so far); seen may be 0. */
  seenIds: 'seen_ids',
  /** int64 [batch, stops]: ids that finish a row besides end-of-text (pad with end-of-text); stops may be 0. */
  stopIds: 'stop_ids',
  /** bool [batch]: rows already finished (they emit -1). */
  done: 'done',
  /** int64 [steps, batch] output: the sampled ids, -1 after a row finished. */
  tokens: 'tokens',
} as const;

// The cache is named as in forward.onnx: [batch, N, past, D] per layer, in the compute dtype.
export { pastKeyName, pastValueName, presentKeyName, presentValueName } from './forward-model.ts';

/** What `tokens` holds for a row after it finished. */
export const FINISHED_ROW_TOKEN = -1;
