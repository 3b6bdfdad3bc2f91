// The OpenAI completions request, validated. The generation parameters come from the shared
// table (shared/src/protocol/parameters.ts), which also checks them on the wire and in the
// engine; this file adds what only the edge knows (prompts, n, streaming, echo). Parameters
// this model cannot honour are refused by name rather than ignored, so a client never gets an
// answer to a question it did not ask.

import { ApiError, badRequest } from '../../../shared/src/errors.ts';
import { isServedModel, MODEL_ID } from '../../../shared/src/model-facts.ts';
import {
  checkNothingToGenerate,
  GENERATION_PARAMETERS,
  type GenerationParameters,
  readGenerationParameters,
} from '../../../shared/src/protocol/parameters.ts';
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
  /** The shared table's parameters: what the GPU function applies, and `stop`. */
  generation: GenerationParameters;
  stream: boolean;
  includeUsage: boolean;
  echo: boolean;
}

/** Stop matching keeps up to a stop's length of text back and compares it per piece: keep it short. */
export const MAX_STOP_LENGTH = GENERATION_PARAMETERS.stop.maxLength;
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
  ...Object.keys(GENERATION_PARAMETERS),
  'stream',
  'stream_options',
  'echo',
  'user',
];

/** OpenAI and vLLM parameters accepted only at their neutral value. */
const NEUTRAL: Record<string, { ok: (v: unknown) => boolean; why: string }> = {
  best_of: { ok: (v) => v === 1, why: 'best_of is not supported' },
  suffix: { ok: (v) => v === '', why: 'suffix (insertion) is not supported by this base model' },
  // The tokenizer has no special tokens to skip or space out: both are neutral at true.
  skip_special_tokens: { ok: (v) => v === true, why: 'only true is supported' },
  spaces_between_special_tokens: { ok: (v) => v === true, why: 'only true is supported' },
};

const KNOWN = new Set([...SUPPORTED, ...Object.keys(NEUTRAL)]);

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
  const generation = readGenerationParameters(body);
  generation.temperature = greedyIfTiny(generation.temperature);
  generation.stop = generation.stop.map((stop) => wellFormedString(stop, 'stop'));
  const echo = optionalBoolean(body, 'echo', false);
  checkNothingToGenerate(generation.max_tokens, echo && generation.logprobs !== undefined);
  const params: CompletionParams = {
    prompts,
    n,
    generation,
    stream,
    includeUsage,
    echo,
  };
  return params;
}
