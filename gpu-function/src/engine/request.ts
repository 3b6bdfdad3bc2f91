// What a caller may ask the engine for, and its validation. The engine is the last line before
// the graph, so anything that would make the graph fail or misbehave is rejected here with an
// OpenAI-shaped error (the GPU function passes these straight to the client).

import { ApiError, badRequest } from '../../../shared/src/errors.ts';
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
  /** Samples of this prompt, sharing one prefill. Default 1. */
  n?: number;
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
  temperature: number;
  topP: number;
  topK: number;
  repetitionPenalty: number;
  seed: number;
  stopIds: number[];
  n: number;
  firstSample: number;
}

export interface ModelLimits {
  vocabSize: number;
  /** Prompt + new tokens may not exceed this (2048 for the model). */
  maxPositions: number;
}

export const MAX_STOP_IDS = 64;
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
      throw badRequest(`'${param}' holds ${JSON.stringify(id)}, not a token id in [0, ${vocabSize})`, param);
    }
  }
  return [...ids];
}

function finiteIn(v: unknown, fallback: number, param: string, ok: (x: number) => boolean, range: string) {
  const x = v ?? fallback;
  if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x)) {
    throw badRequest(`'${param}' must be a number ${range} (got ${JSON.stringify(v)})`, param);
  }
  return x;
}

export function resolveRequest(req: GenerationRequest, limits: ModelLimits): ResolvedRequest {
  const promptIds = tokenIds(req.promptIds, limits.vocabSize, 'prompt', false);
  const maxNewTokens = req.maxNewTokens;
  if (!isInt(maxNewTokens) || maxNewTokens < 1) {
    throw badRequest(
      `'max_tokens' must be an integer >= 1 (got ${JSON.stringify(maxNewTokens)})`,
      'max_tokens',
    );
  }
  if (promptIds.length + maxNewTokens > limits.maxPositions) {
    throw new ContextLengthError(promptIds.length, maxNewTokens, limits.maxPositions);
  }
  const topK = req.topK ?? 0;
  if (!isInt(topK) || topK < 0)
    throw badRequest(`'top_k' must be an integer >= 0 (got ${JSON.stringify(topK)})`, 'top_k');
  const seed = req.seed ?? randomSeed();
  if (!isInt(seed)) throw badRequest(`'seed' must be an integer (got ${JSON.stringify(req.seed)})`, 'seed');
  const stopIds = tokenIds(req.stopIds ?? [], limits.vocabSize, 'stop', true);
  if (stopIds.length > MAX_STOP_IDS) throw badRequest(`at most ${MAX_STOP_IDS} stop token ids`, 'stop');
  const n = req.n ?? 1;
  if (!isInt(n) || n < 1 || n > MAX_SAMPLES) {
    throw badRequest(`'n' must be an integer in [1, ${MAX_SAMPLES}] (got ${JSON.stringify(req.n)})`, 'n');
  }
  const firstSample = req.firstSample ?? 0;
  if (!isInt(firstSample) || firstSample < 0) {
    throw badRequest(`'firstSample' must be an integer >= 0 (got ${JSON.stringify(firstSample)})`, 'n');
  }
  return {
    promptIds,
    maxNewTokens,
    n,
    firstSample,
    temperature: finiteIn(req.temperature, 1, 'temperature', (x) => x >= 0, '>= 0'),
    topP: finiteIn(req.topP, 1, 'top_p', (x) => x > 0 && x <= 1, 'in (0, 1]'),
    topK: Math.min(topK, limits.vocabSize),
    repetitionPenalty: finiteIn(req.repetitionPenalty, 1, 'repetition_penalty', (x) => x > 0, '> 0'),
    seed,
    stopIds,
  };
}
