// What a caller may ask the engine for, and its validation. The engine is the last line before
// the graph, so anything that would make the graph fail or misbehave is rejected here with an
// OpenAI-shaped error (the GPU function passes these straight to the client).

import { ApiError, badRequest } from '../../../shared/src/errors.ts';
import {
  checkMinTokens,
  checkNothingToGenerate,
  GENERATION_PARAMETERS,
  type ParameterName,
  ROW_PARAMETERS,
  readParameter,
} from '../../../shared/src/protocol/parameters.ts';
import { randomSeed } from './prng.ts';

export interface GenerationRequest {
  promptIds: readonly number[];
  maxNewTokens: number;
  /** 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Nucleus mass in (0, 1]; 1 = off. Default 1. */
  topP?: number;
  /** Keep the k most likely ids; 0 = off. Default 0. */
  topK?: number;
  /** > 1 discourages ids already present in prompt + output; 1 = off. Default 1. */
  repetitionPenalty?: number;
  /** Same seed + parameters = same tokens. Default: a random seed (reported in the result). */
  seed?: number;
  /** Ids that end generation (emitted, then finishReason 'stop'). End-of-text always stops. */
  stopIds?: readonly number[];
  /** Keep ids at least this fraction as likely as the top one; 0 = off. Default 0. */
  minP?: number;
  /** OpenAI's presence and frequency penalties (generated ids only); 0 = off. Default 0. */
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** [token id, value added to its logit]. */
  logitBias?: readonly (readonly [number, number])[];
  /** Generate past end-of-text. Default false. */
  ignoreEos?: boolean;
  /** Tokens before end-of-text or a stop id may end generation. Default 0. */
  minTokens?: number;
  /** Per-row parameters by their table name (the wire's `sampling` fields); win over the fields above. */
  row?: Readonly<Record<string, number>>;
  /** Samples of this prompt, sharing one prefill. Default 1. */
  n?: number;
  /** Report each token's log-probability with this many alternatives (0..5). Default none. */
  logprobs?: number | null;
  /** Score the prompt's tokens too (with `logprobs` alternatives); maxNewTokens may then be 0. */
  scorePrompt?: boolean;
  /**
   * Index of the first sample (default 0): sample j draws from the seed stream of index
   * `firstSample + j`, so a request split into parts samples exactly as it would whole.
   */
  firstSample?: number;
}

/** A request with every default filled in. */
export interface ResolvedRequest {
  promptIds: number[];
  maxNewTokens: number;
  /** The per-row scalar parameters by their name in the shared table (ROW_PARAMETERS). */
  row: Record<string, number>;
  seed: number;
  stopIds: number[];
  n: number;
  firstSample: number;
  logprobs: number | null;
  scorePrompt: boolean;
  logitBias: [number, number][];
  ignoreEos: boolean;
  minTokens: number;
}

export interface ModelLimits {
  vocabSize: number;
  /** Prompt + new tokens may not exceed this (2048 for the model). */
  maxPositions: number;
}

/** Samples one engine request may ask for (the service splits larger requests). */
export const MAX_SAMPLES = 256;

/** Prompt + max_new_tokens over the context window: OpenAI's `context_length_exceeded`. */
export class ContextLengthError extends ApiError {
  constructor(promptTokens: number, maxNewTokens: number, limit: number) {
    super(
      400,
      'invalid_request_error',
      `This model's maximum context length is ${limit} tokens, but ${promptTokens + maxNewTokens} were requested ` +
        `(${promptTokens} in the prompt, ${maxNewTokens} to generate). Shorten the prompt or reduce max_tokens.`,
      { param: 'max_tokens', code: 'context_length_exceeded' },
    );
    this.name = 'ContextLengthError';
  }
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

function tokenIds(ids: unknown, vocabSize: number, param: string, allowEmpty: boolean): number[] {
  if (!Array.isArray(ids)) throw badRequest(`'${param}' must be an array of token ids`, param);
  if (!allowEmpty && ids.length === 0) throw badRequest(`'${param}' must not be empty`, param);
  for (const id of ids) {
    if (!isInt(id) || id < 0 || id >= vocabSize) {
      throw badRequest(
        `'${param}' holds ${String(id).slice(0, 32)}, not a token id in [0, ${vocabSize})`,
        param,
      );
    }
  }
  return [...ids];
}

/** Every per-row parameter, from the request's field of the table's `engine` name. */
function rowParameters(req: GenerationRequest, vocabSize: number): Record<string, number> {
  const fields = req as unknown as Record<string, unknown>;
  const row: Record<string, number> = {};
  for (const p of ROW_PARAMETERS) {
    const value = req.row?.[p.name] ?? fields[p.engine];
    row[p.name] = readParameter(p.spec, { [p.name]: value }, p.name) as number;
  }
  row.top_k = Math.min(row.top_k as number, vocabSize); // more than the vocabulary is all of it
  return row;
}

/** A parameter checked by the shared table (the same rules as at the edge and on the wire). */
function checked<N extends ParameterName>(name: N, value: unknown): unknown {
  return readParameter(GENERATION_PARAMETERS[name], { [name]: value }, name);
}

export function resolveRequest(req: GenerationRequest, limits: ModelLimits): ResolvedRequest {
  const promptIds = tokenIds(req.promptIds, limits.vocabSize, 'prompt', false);
  if (req.maxNewTokens === undefined) throw badRequest("'max_tokens' is required", 'max_tokens');
  const maxNewTokens = checked('max_tokens', req.maxNewTokens) as number;
  const scorePrompt = req.scorePrompt === true;
  checkNothingToGenerate(maxNewTokens, scorePrompt);
  // Only what depends on the model is checked here beyond the table: its context and vocabulary.
  if (promptIds.length + maxNewTokens > limits.maxPositions) {
    throw new ContextLengthError(promptIds.length, maxNewTokens, limits.maxPositions);
  }
  const minTokens = checked('min_tokens', req.minTokens) as number;
  checkMinTokens(minTokens, maxNewTokens);
  const stopIds = tokenIds(
    checked('stop_token_ids', req.stopIds ?? []),
    limits.vocabSize,
    'stop_token_ids',
    true,
  );
  const n = req.n ?? 1;
  if (!isInt(n) || n < 1 || n > MAX_SAMPLES) {
    throw badRequest(
      `'n' must be an integer in [1, ${MAX_SAMPLES}] (got ${String(req.n).slice(0, 32)})`,
      'n',
    );
  }
  const firstSample = req.firstSample ?? 0;
  if (!isInt(firstSample) || firstSample < 0) {
    throw badRequest(`'firstSample' must be an integer >= 0 (got ${String(firstSample).slice(0, 32)})`, 'n');
  }
  return {
    promptIds,
    maxNewTokens,
    n,
    firstSample,
    row: rowParameters(req, limits.vocabSize),
    seed: (checked('seed', req.seed) as number | undefined) ?? randomSeed(),
    stopIds,
    logprobs: (checked('logprobs', req.logprobs) as number | undefined) ?? null,
    scorePrompt,
    logitBias: checked(
      'logit_bias',
      req.logitBias === undefined ? undefined : Object.fromEntries(req.logitBias),
    ) as [number, number][],
    ignoreEos: checked('ignore_eos', req.ignoreEos) as boolean,
    minTokens,
  };
}
