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

/**
 * OpenAI accepts a string, an array of token ids, or a batch of either. This model serves one
 * prompt per request, so a batch is accepted only when it holds exactly one prompt.
 */
export function parsePrompt(v: unknown, param = 'prompt'): Prompt {
  if (v === undefined || v === null) throw badRequest(`Missing required parameter: '${param}'.`, param);
  if (typeof v === 'string') return text(v, param);
  if (!Array.isArray(v)) throw badRequest(`'${param}' must be a string or an array of token ids.`, param);
  const first = v[0];
  if (typeof first === 'string' || Array.isArray(first)) {
    if (v.length !== 1) {
      throw badRequest(`'${param}' holds ${v.length} prompts; send one prompt per request.`, param);
    }
    return typeof first === 'string' ? text(first, param) : { ids: tokenIds(first, param) };
  }
  return { ids: tokenIds(v, param) };
}
