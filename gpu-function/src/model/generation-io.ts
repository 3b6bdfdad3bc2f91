// Names and meaning of the generation graph's inputs and outputs (model.onnx). The graph
// builder and the engine both read them from here, so they cannot drift apart.
//
// One run decodes up to `max_steps` tokens for a batch of rows: the first step consumes
// `input_ids` (prompts, left-padded, on a prefill run; each row's last sampled token
// afterwards), every step samples one token per row in the graph and feeds it to the next.
// The cache goes in once and comes out once per run.

// The per-row scalar parameters (temperature, top_p, top_k, min_p, repetition_penalty, the
// presence and frequency penalties) are inputs too, [batch] each, named as in the shared
// parameter table (ROW_PARAMETERS in shared/src/protocol/parameters.ts).
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
  /** int64 [batch, seen]: ids the repetition penalty applies to (prompt + output so far); seen may be 0. */
  seenIds: 'seen_ids',
  /**
   * int64 [batch, stops]: ids that finish a row, end-of-text included unless the row ignores it
   * (pad by repeating one of the row's own); stops may be 0.
   */
  stopIds: 'stop_ids',
  /**
   * int64 / float32 [batch, counted]: the row's generated ids so far and a weight each (1, or 0
   * for padding): their counts drive the presence and frequency penalties (the prompt is not
   * counted, as OpenAI does). counted may be 0.
   */
  countedIds: 'counted_ids',
  countedWeights: 'counted_weights',
  /** int64 / float32 [batch, biased]: logit_bias as ids and values (pad by repeating a pair); biased may be 0. */
  biasIds: 'bias_ids',
  biasValues: 'bias_values',
  /** int64 [batch]: steps before the row's stop ids (end-of-text included) may be chosen (min_tokens). */
  minTokensLeft: 'min_tokens_left',
  /** bool [batch]: rows already finished (they emit -1). */
  done: 'done',
  /** int64 [steps, batch] output: the sampled ids, -1 after a row finished. */
  tokens: 'tokens',
  /**
   * int64 [batch, seq] (aligned with input_ids; [batch, 0] for none): score the prompt. On the
   * first step each input position's distribution is scored against the row's target there
   * (the next prompt token), without the [seq x vocabulary] log-probabilities leaving the graph.
   */
  scoreTargets: 'score_targets',
  /** float32 [steps, batch]: log-probability of each sampled id (the model's own distribution). */
  tokenLogprobs: 'token_logprobs',
  /** float32 / int64 [steps, batch, LOGPROB_TOP_K]: the most likely ids of each step and theirs. */
  topLogprobs: 'top_logprobs',
  topIds: 'top_ids',
  /** float32 [batch, seq]: log-probability of each score target (empty without score_targets). */
  promptLogprobs: 'prompt_logprobs',
  /** float32 / int64 [batch, seq, LOGPROB_TOP_K]: the most likely ids at each scored position. */
  promptTopLogprobs: 'prompt_top_logprobs',
  promptTopIds: 'prompt_top_ids',
} as const;

// The cache is named as in forward.onnx: [batch, N, past, D] per layer, in the compute dtype.
export { pastKeyName, pastValueName, presentKeyName, presentValueName } from './forward-model.ts';

/** Alternatives reported per position (OpenAI's `logprobs` goes up to 5). */
export const LOGPROB_TOP_K = 5;

/** What `tokens` holds for a row after it finished. */
export const FINISHED_ROW_TOKEN = -1;
