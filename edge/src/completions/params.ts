// The OpenAI completions request, validated. Parameters this model cannot honour are refused by
// name rather than ignored, so a client never gets an answer to a question it did not ask.

import { ApiError, badRequest } from '../../../shared/src/errors.ts';
import { CONTEXT_LENGTH, isServedModel, MODEL_ID, VOCAB_SIZE } from '../../../shared/src/model-facts.ts';
import {
  isPlainObject,
  optionalBoolean,
  optionalNumber,
  preview,
  rejectUnknown,
  requireObject,
  shortName,
  wellFormedString,
} from '../http/fields.ts';
import { type Prompt, parsePrompts } from './prompt.ts';

export interface CompletionParams {
  /** One or more prompts; choice `p * n + j` is sample j of prompt p. */
  prompts: Prompt[];
  /** Completions per prompt. */
  n: number;
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  repetitionPenalty: number;
  seed?: number;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  echo: boolean;
}

export const DEFAULT_MAX_TOKENS = 16;
const MAX_STOP_SEQUENCES = 4;
/** Stop matching keeps up to a stop's length of text back and compares it per piece: keep it short. */
export const MAX_STOP_LENGTH = 256;
const MAX_USER_LENGTH = 256;
/**
 * Temperatures this small sample the argmax anyway, and below about 1e-37 the logits divided by
 * them overflow float32 (NaN in the sampler): they are sent as 0, greedy.
 */
export const MIN_TEMPERATURE = 1e-5;

const SUPPORTED = [
  'model',
  'prompt',
  'n',
  'max_tokens',
  'temperature',
  'top_p',
  'top_k',
  'repetition_penalty',
  'stop',
  'seed',
  'stream',
  'stream_options',
  'echo',
  'user',
];

/** OpenAI parameters accepted only at their neutral value. */
const NEUTRAL: Record<string, { ok: (v: unknown) => boolean; why: string }> = {
  best_of: { ok: (v) => v === 1, why: 'best_of is not supported' },
  logprobs: { ok: () => false, why: 'logprobs are not supported' },
  suffix: { ok: (v) => v === '', why: 'suffix (insertion) is not supported by this base model' },
  logit_bias: {
    ok: (v) => isPlainObject(v) && Object.keys(v).length === 0,
    why: 'logit_bias is not supported',
  },
  presence_penalty: { ok: (v) => v === 0, why: 'presence_penalty is not supported; use repetition_penalty' },
  frequency_penalty: {
    ok: (v) => v === 0,
    why: 'frequency_penalty is not supported; use repetition_penalty',
  },
};

const KNOWN = new Set([...SUPPORTED, ...Object.keys(NEUTRAL)]);

function parseStop(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list)) throw badRequest("'stop' must be a string or an array of strings.", 'stop');
  if (list.length > MAX_STOP_SEQUENCES) {
    throw badRequest(`'stop' may hold at most ${MAX_STOP_SEQUENCES} sequences; got ${list.length}.`, 'stop');
  }
  return list.map((s) => {
    const stop = wellFormedString(s, 'stop');
    if (stop === '') throw badRequest("'stop' sequences must not be empty.", 'stop');
    if (stop.length > MAX_STOP_LENGTH) {
      throw badRequest(`'stop' sequences may be at most ${MAX_STOP_LENGTH} characters long.`, 'stop');
    }
    return stop;
  });
}

const greedyIfTiny = (t: number) => (t < MIN_TEMPERATURE ? 0 : t);

/** Limits of the deployment the parameters are checked against. */
export interface ParamLimits {
  /** Choices (prompts x n) one request may ask for. */
  maxChoices: number;
}

export function parseCompletionParams(raw: unknown, limits: ParamLimits): CompletionParams {
  const body = requireObject(raw);
  rejectUnknown(body, KNOWN);
  for (const [param, rule] of Object.entries(NEUTRAL)) {
    const v = body[param];
    if (v !== undefined && v !== null && !rule.ok(v)) throw badRequest(`'${param}': ${rule.why}.`, param);
  }

  if (body.model === undefined || body.model === null) {
    throw badRequest("Missing required parameter: 'model'.", 'model');
  }
  if (!isServedModel(body.model)) {
    throw new ApiError(
      404,
      'invalid_request_error',
      `The model ${preview(body.model)} does not exist; this API serves '${MODEL_ID}'.`,
      { param: 'model', code: 'model_not_found' },
    );
  }
  if (body.user !== undefined && body.user !== null) {
    const user = wellFormedString(body.user, 'user');
    if (user.length > MAX_USER_LENGTH) {
      throw badRequest(`'user' must be at most ${MAX_USER_LENGTH} characters.`, 'user');
    }
  }

  const stream = optionalBoolean(body, 'stream', false);
  let includeUsage = false;
  const options = body.stream_options;
  if (options !== undefined && options !== null) {
    if (!stream)
      throw badRequest("'stream_options' is only allowed when 'stream' is true.", 'stream_options');
    if (!isPlainObject(options)) throw badRequest("'stream_options' must be an object.", 'stream_options');
    for (const key of Object.keys(options)) {
      if (key !== 'include_usage') {
        throw badRequest(
          `Unrecognized argument in 'stream_options': ${shortName(key)}`,
          `stream_options.${shortName(key)}`,
        );
      }
    }
    includeUsage = optionalBoolean(options, 'include_usage', false);
  }

  const prompts = parsePrompts(body.prompt);
  const n = optionalNumber(body, 'n', { fallback: 1, min: 1, max: limits.maxChoices, integer: true });
  if (prompts.length * n > limits.maxChoices) {
    throw badRequest(
      `${prompts.length} prompts x n = ${n} asks for ${prompts.length * n} completions; at most ${limits.maxChoices} per request.`,
      n > 1 ? 'n' : 'prompt',
    );
  }
  const params: CompletionParams = {
    prompts,
    n,
    maxTokens: optionalNumber(body, 'max_tokens', {
      fallback: DEFAULT_MAX_TOKENS,
      min: 1,
      max: CONTEXT_LENGTH,
      integer: true,
    }),
    temperature: greedyIfTiny(optionalNumber(body, 'temperature', { fallback: 1, min: 0, max: 2 })),
    topP: optionalNumber(body, 'top_p', { fallback: 1, min: 0, max: 1, exclusiveMin: true }),
    topK: optionalNumber(body, 'top_k', { fallback: 0, min: 0, max: VOCAB_SIZE, integer: true }),
    repetitionPenalty: optionalNumber(body, 'repetition_penalty', {
      fallback: 1,
      min: 0,
      max: 10,
      exclusiveMin: true,
    }),
    stop: parseStop(body.stop),
    stream,
    includeUsage,
    echo: optionalBoolean(body, 'echo', false),
  };
  if (body.seed !== undefined && body.seed !== null) {
    params.seed = optionalNumber(body, 'seed', {
      fallback: 0,
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
      integer: true,
    });
  }
  return params;
}
