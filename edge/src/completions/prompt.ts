import { badRequest } from '../../../shared/src/errors.ts';
import { CONTEXT_LENGTH, VOCAB_SIZE } from '../../../shared/src/model-facts.ts';
import { preview, wellFormedString } from '../http/fields.ts';

/** One prompt: text to tokenize, or token ids as given. */
export type Prompt = { text: string } | { ids: number[] };

function tokenIds(v: unknown[], param: string): number[] {
  if (v.length === 0) throw badRequest(`'${param}' must not be empty.`, param);
  if (v.length > CONTEXT_LENGTH) {
    throw badRequest(
      `'${param}' has ${v.length} tokens; the context length is ${CONTEXT_LENGTH}.`,
      param,
      'context_length_exceeded',
    );
  }
  for (const id of v) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) {
      throw badRequest(
        `'${param}' must be a string or an array of token ids (integers in [0, ${VOCAB_SIZE})); got ${preview(id)}.`,
        param,
      );
    }
  }
  return v as number[];
}

function text(v: unknown, param: string): Prompt {
  const s = wellFormedString(v, param);
  if (s === '') throw badRequest(`'${param}' must not be empty.`, param);
  return { text: s };
}

/** Prompts one request may hold (OpenAI's limit for a batch of prompts). */
export const MAX_PROMPTS = 20;

/**
 * OpenAI accepts a string, an array of token ids, or a batch (up to 20) of either: the
 * completions of prompt p are choices p * n .. p * n + n - 1.
 */
export function parsePrompts(v: unknown, param = 'prompt'): Prompt[] {
  if (v === undefined || v === null) throw badRequest(`Missing required parameter: '${param}'.`, param);
  if (typeof v === 'string') return [text(v, param)];
  if (!Array.isArray(v)) throw badRequest(`'${param}' must be a string or an array of token ids.`, param);
  if (v.length === 0) throw badRequest(`'${param}' must not be empty.`, param);
  const first = v[0];
  if (typeof first !== 'string' && !Array.isArray(first)) return [{ ids: tokenIds(v, param) }];
  if (v.length > MAX_PROMPTS) {
    throw badRequest(`'${param}' holds ${v.length} prompts; at most ${MAX_PROMPTS} are allowed.`, param);
  }
  return v.map((p) => {
    if (typeof first === 'string') {
      if (typeof p !== 'string') throw badRequest(`'${param}' mixes strings with other values.`, param);
      return text(p, param);
    }
    if (!Array.isArray(p)) throw badRequest(`'${param}' mixes token-id lists with other values.`, param);
    return { ids: tokenIds(p, param) };
  });
}
