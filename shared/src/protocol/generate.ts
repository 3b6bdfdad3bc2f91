// The internal generation API between the edge and the GPU function.
//
//   POST /v1/generate            (HMAC-signed, see ../signing.ts)
//   content-type: application/json, body: GenerateRequest
//   200 content-type: application/x-ndjson, one GenerateFrame per line:
//     {"type":"heartbeat","phase":"loading"|"queued"}   zero or more, while waiting
//     {"type":"tokens","index":i,"ids":[...]}             zero or more, in order per index
//     {"type":"done", ...DoneFrame}                       exactly one, last
//
// A request holds one or more prompts and asks for n samples of each: choice
// `index = prompt_index * n + j` (OpenAI's order). Frames of different choices interleave;
// `index` is absent (meaning 0) in frames of one-choice requests, and a one-prompt request may
// send `prompt_ids` instead of `prompts`, so edges and functions of either age understand each
// other for the single-choice case.
//   Errors before the stream starts are OpenAI-shaped JSON (4xx/5xx, 503 with Retry-After).
//
// Both sides validate with `parseGenerateRequest`, so the rules live in one place.

import { badRequest } from '../errors.ts';
import { CONTEXT_LENGTH, VOCAB_SIZE } from '../model-facts.ts';
import { preview } from '../preview.ts';
import { checkMinTokens, checkNothingToGenerate, readParameter, readWireGroup } from './parameters.ts';

/**
 * Wire version 2. The fields of `sampling` and `stopping` are the engine-side parameters of the
 * shared table (parameters.ts), under their wire names; the table checks them on both sides.
 */
export const WIRE_VERSION = 2;

/** How each next token is chosen. */
export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number;
  /** 1 disables nucleus truncation. */
  top_p: number;
  /** 0 disables top-k truncation. */
  top_k: number;
  /** 1 disables the penalty. */
  repetition_penalty: number;
  /** 0 disables min-p truncation. */
  min_p: number;
  /** OpenAI's penalties from the counts of generated ids; 0 disables each. */
  presence_penalty: number;
  frequency_penalty: number;
  /** [token id, value added to its logit] (an object keyed by id on the wire). */
  logit_bias: [number, number][];
  /** Same seed and parameters give the same tokens; absent means random. */
  seed?: number;
}

/** When a choice ends. */
export interface StoppingParams {
  max_new_tokens: number;
  /** Ids that end a choice (end-of-text too, unless ignore_eos). */
  stop_ids: number[];
  ignore_eos: boolean;
  /** Tokens before end-of-text or a stop id may end a choice. */
  min_tokens: number;
}

/** What comes back besides the tokens. */
export interface OutputParams {
  /** Each token's log-probability and this many alternatives (0..5); absent: none. */
  logprobs?: number;
  /** Score the prompt too (its tokens' log-probabilities, with `logprobs` alternatives). */
  score_prompt?: boolean;
}

export interface GenerateRequest {
  version: typeof WIRE_VERSION;
  /** One or more prompts (at most MAX_PROMPTS), each a non-empty list of token ids. */
  prompts: number[][];
  /** Samples of each prompt (they share its prefill). Default 1. */
  n: number;
  /** The caller's opaque key id: the function takes turns between keys. */
  key_id?: string;
  sampling: SamplingParams;
  stopping: StoppingParams;
  output: OutputParams;
}

export type FinishReason = 'length' | 'stop' | 'eos' | 'error' | 'cancelled';

export interface Timings {
  queue_ms: number;
  load_ms: number;
  prefill_ms: number;
  decode_ms: number;
  total_ms: number;
}

export interface ChoiceDone {
  index: number;
  finish_reason: FinishReason;
  completion_tokens: number;
}

export interface DoneFrame {
  type: 'done';
  /** Of choice 0 (the whole story for one choice); every choice's is in `choices`. */
  finish_reason: FinishReason;
  /** Every prompt once. */
  prompt_tokens: number;
  /** All choices together. */
  completion_tokens: number;
  /** Per choice, in index order (absent from older functions). */
  choices?: ChoiceDone[];
  /** The seed used (the request's, or one drawn for it). */
  seed?: number;
  timings: Timings;
  error?: { message: string; code: string };
}

/** One token's log-probability and the most likely alternatives at its position. */
export interface WireLogprob {
  logprob: number;
  /** [id, logprob] pairs, most likely first (as many as `output.logprobs` asked). */
  top: [number, number][];
}

export interface TokensFrame {
  type: 'tokens';
  /** The choice (absent: 0). */
  index?: number;
  ids: number[];
  /** With `output.logprobs`: one per id. */
  logprobs?: WireLogprob[];
}

/** With `output.score_prompt`: each prompt's token scores (the first token's is null), before any tokens frame. */
export interface PromptFrame {
  type: 'prompt';
  /** The prompt index. */
  prompt: number;
  logprobs: (WireLogprob | null)[];
}

export type GenerateFrame =
  | { type: 'heartbeat'; phase: 'loading' | 'queued' }
  | PromptFrame
  | TokensFrame
  | DoneFrame;

/** Prompts one request may hold (OpenAI's batch of prompts). */
export const MAX_PROMPTS = 20;
/** Choices (prompts x n) one request may ask for on the wire; a function may allow fewer. */
export const MAX_CHOICES = 128;
const MAX_KEY_ID = 128;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function tokenIds(v: unknown, param: string, max: number): number[] {
  if (!Array.isArray(v)) throw badRequest(`'${param}' must be an array of token ids.`, param);
  if (v.length > max) throw badRequest(`'${param}' has ${v.length} ids; at most ${max} are allowed.`, param);
  for (const id of v) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) {
      throw badRequest(`'${param}' must hold integers in [0, ${VOCAB_SIZE}); got ${preview(id)}.`, param);
    }
  }
  return v as number[];
}

/** `prompts`, or a single `prompt_ids` (one of the two). */
function promptList(body: Record<string, unknown>): number[][] {
  if (body.prompts !== undefined && body.prompt_ids !== undefined) {
    throw badRequest("Send 'prompts' or 'prompt_ids', not both.", 'prompts');
  }
  const param = body.prompts !== undefined ? 'prompts' : 'prompt_ids';
  const raw = body.prompts !== undefined ? body.prompts : [body.prompt_ids];
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_PROMPTS) {
    throw badRequest(`'${param}' must hold 1 to ${MAX_PROMPTS} prompts.`, param);
  }
  return raw.map((p) => {
    const ids = tokenIds(p, param, CONTEXT_LENGTH);
    if (ids.length === 0) throw badRequest(`'${param}' must not hold an empty prompt.`, param);
    return ids;
  });
}

const V1_FIELDS = [
  'max_new_tokens',
  'temperature',
  'top_p',
  'top_k',
  'repetition_penalty',
  'seed',
  'stop_ids',
];

/**
 * Version 1 (flat fields, no `version`) as version 2: an older edge keeps working with a newer
 * function during a rollout.
 */
function fromVersion1(body: Record<string, unknown>): Record<string, unknown> {
  const { max_new_tokens, stop_ids, temperature, top_p, top_k, repetition_penalty, seed, ...rest } = body;
  const defined = (o: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  return {
    ...rest,
    version: WIRE_VERSION,
    sampling: defined({ temperature, top_p, top_k, repetition_penalty, seed }),
    stopping: defined({ max_new_tokens, stop_ids }),
  };
}

/** Validates an internal generation request; throws a 400 ApiError naming the parameter. */
export function parseGenerateRequest(raw: unknown): GenerateRequest {
  if (!isPlainObject(raw)) throw badRequest('The request body must be a JSON object.');
  const body = raw.version === undefined && V1_FIELDS.some((f) => f in raw) ? fromVersion1(raw) : raw;
  const known = new Set([
    'version',
    'prompt_ids',
    'prompts',
    'n',
    'key_id',
    'sampling',
    'stopping',
    'output',
  ]);
  for (const key of Object.keys(body)) {
    if (!known.has(key)) throw badRequest(`Unknown parameter '${key.slice(0, 64)}'.`, key.slice(0, 64));
  }
  if (body.version !== undefined && body.version !== WIRE_VERSION) {
    throw badRequest(
      `Wire version ${String(body.version).slice(0, 16)} is not supported (${WIRE_VERSION}).`,
      'version',
    );
  }
  const prompts = promptList(body);
  const n = readParameter(
    { kind: 'integer', group: 'edge', default: 1, min: 1, max: MAX_CHOICES, doc: '' },
    body,
    'n',
  ) as number;
  if (prompts.length * n > MAX_CHOICES) {
    throw badRequest(`${prompts.length} prompts x n = ${n} is over ${MAX_CHOICES} choices.`, 'n');
  }
  const sampling = readWireGroup(body.sampling, 'sampling') as unknown as SamplingParams;
  const stopping = readWireGroup(body.stopping, 'stopping') as unknown as StoppingParams;
  const { score_prompt, ...outputFields } = isPlainObject(body.output) ? body.output : {};
  const output = readWireGroup(
    body.output === undefined ? undefined : outputFields,
    'output',
  ) as OutputParams;
  if (score_prompt !== undefined) {
    if (typeof score_prompt !== 'boolean')
      throw badRequest("'score_prompt' must be a boolean.", 'score_prompt');
    if (score_prompt) output.score_prompt = true;
  }
  checkMinTokens(stopping.min_tokens, stopping.max_new_tokens);
  checkNothingToGenerate(stopping.max_new_tokens, output.score_prompt === true, 'max_new_tokens');
  const longest = Math.max(...prompts.map((p) => p.length));
  if (longest + stopping.max_new_tokens > CONTEXT_LENGTH) {
    throw badRequest(
      `prompt (${longest} tokens) + max_new_tokens (${stopping.max_new_tokens}) exceeds the context length of ${CONTEXT_LENGTH}.`,
      'max_new_tokens',
      'context_length_exceeded',
    );
  }
  const req: GenerateRequest = { version: WIRE_VERSION, prompts, n, sampling, stopping, output };
  if (body.key_id !== undefined) {
    if (typeof body.key_id !== 'string' || body.key_id.length === 0 || body.key_id.length > MAX_KEY_ID) {
      throw badRequest(`'key_id' must be a string of 1 to ${MAX_KEY_ID} characters.`, 'key_id');
    }
    req.key_id = body.key_id;
  }
  return req;
}
