// The internal generation API between the edge and the GPU function.
//
//   POST /v1/generate            (HMAC-signed, see ../signing.ts)
//   content-type: application/json, body: GenerateRequest
//   200 content-type: application/x-ndjson, one GenerateFrame per line:
//     {"type":"heartbeat","phase":"loading"|"queued"}   zero or more, while waiting
//     {"type":"tokens","ids":[...]}                       zero or more, in order
//     {"type":"done", ...DoneFrame}                       exactly one, last
//   Errors before the stream starts are OpenAI-shaped JSON (4xx/5xx, 503 with Retry-After).
//
// Both sides validate with `parseGenerateRequest`, so the rules live in one place.

import { badRequest } from '../errors.ts';
import { CONTEXT_LENGTH, VOCAB_SIZE } from '../model-facts.ts';

export interface GenerateRequest {
  prompt_ids: number[];
  max_new_tokens: number;
  /** 0 means greedy. */
  temperature: number;
  /** 1 disables nucleus truncation. */
  top_p: number;
  /** 0 disables top-k truncation. */
  top_k: number;
  /** 1 disables the penalty. */
  repetition_penalty: number;
  /** Same seed and parameters give the same tokens; absent means random. */
  seed?: number;
  /** Generation stops after any of these ids (end-of-text always stops). */
  stop_ids: number[];
}

export type FinishReason = 'length' | 'stop' | 'eos' | 'error' | 'cancelled';

export interface Timings {
  queue_ms: number;
  load_ms: number;
  prefill_ms: number;
  decode_ms: number;
  total_ms: number;
}

export interface DoneFrame {
  type: 'done';
  finish_reason: FinishReason;
  prompt_tokens: number;
  completion_tokens: number;
  timings: Timings;
  error?: { message: string; code: string };
}

export type GenerateFrame =
  | { type: 'heartbeat'; phase: 'loading' | 'queued' }
  | { type: 'tokens'; ids: number[] }
  | DoneFrame;

export const GENERATE_DEFAULTS = {
  temperature: 1,
  top_p: 1,
  top_k: 0,
  repetition_penalty: 1,
} as const;

const MAX_STOP_IDS = 16;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function tokenIds(v: unknown, param: string, max: number): number[] {
  if (!Array.isArray(v)) throw badRequest(`'${param}' must be an array of token ids.`, param);
  if (v.length > max) throw badRequest(`'${param}' has ${v.length} ids; at most ${max} are allowed.`, param);
  for (const id of v) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) {
      throw badRequest(
        `'${param}' must hold integers in [0, ${VOCAB_SIZE}); got ${JSON.stringify(id)}.`,
        param,
      );
    }
  }
  return v as number[];
}

function numberIn(
  body: Record<string, unknown>,
  param: string,
  fallback: number,
  min: number,
  max: number,
  opts: { integer?: boolean; exclusiveMin?: boolean } = {},
): number {
  const v = body[param];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw badRequest(`'${param}' must be a finite number.`, param);
  if (opts.integer && !Number.isInteger(v)) throw badRequest(`'${param}' must be an integer.`, param);
  if (opts.exclusiveMin ? v <= min : v < min) {
    throw badRequest(
      `'${param}' must be ${opts.exclusiveMin ? 'greater than' : 'at least'} ${min}; got ${v}.`,
      param,
    );
  }
  if (v > max) throw badRequest(`'${param}' must be at most ${max}; got ${v}.`, param);
  return v;
}

/** Validates an internal generation request; throws a 400 ApiError naming the parameter. */
export function parseGenerateRequest(body: unknown): GenerateRequest {
  if (!isPlainObject(body)) throw badRequest('The request body must be a JSON object.');
  const known = new Set([
    'prompt_ids',
    'max_new_tokens',
    'temperature',
    'top_p',
    'top_k',
    'repetition_penalty',
    'seed',
    'stop_ids',
  ]);
  for (const key of Object.keys(body)) {
    if (!known.has(key)) throw badRequest(`Unknown parameter '${key}'.`, key);
  }
  const prompt = tokenIds(body.prompt_ids, 'prompt_ids', CONTEXT_LENGTH);
  if (prompt.length === 0) throw badRequest("'prompt_ids' must not be empty.", 'prompt_ids');
  const maxNew = numberIn(body, 'max_new_tokens', 16, 1, CONTEXT_LENGTH, { integer: true });
  if (prompt.length + maxNew > CONTEXT_LENGTH) {
    throw badRequest(
      `prompt (${prompt.length} tokens) + max_new_tokens (${maxNew}) exceeds the context length of ${CONTEXT_LENGTH}.`,
      'max_new_tokens',
      'context_length_exceeded',
    );
  }
  const req: GenerateRequest = {
    prompt_ids: prompt,
    max_new_tokens: maxNew,
    temperature: numberIn(body, 'temperature', GENERATE_DEFAULTS.temperature, 0, 100),
    top_p: numberIn(body, 'top_p', GENERATE_DEFAULTS.top_p, 0, 1, { exclusiveMin: true }),
    top_k: numberIn(body, 'top_k', GENERATE_DEFAULTS.top_k, 0, VOCAB_SIZE, { integer: true }),
    repetition_penalty: numberIn(body, 'repetition_penalty', GENERATE_DEFAULTS.repetition_penalty, 0, 100, {
      exclusiveMin: true,
    }),
    stop_ids: body.stop_ids === undefined ? [] : tokenIds(body.stop_ids, 'stop_ids', MAX_STOP_IDS),
  };
  if (body.seed !== undefined && body.seed !== null) {
    req.seed = numberIn(body, 'seed', 0, 0, Number.MAX_SAFE_INTEGER, { integer: true });
  }
  return req;
}
