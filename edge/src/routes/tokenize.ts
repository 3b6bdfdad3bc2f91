// POST /v1/tokenize and /v1/detokenize: let clients count tokens exactly as the API does. Both
// count against the key's request limit (index.ts) and are bounded before any work: a prompt
// that cannot fit in the context is not encoded, and at most a context's worth of ids is decoded.

import { Hono } from 'hono';
import { ApiError, badRequest } from '../../../shared/src/errors.ts';
import { CONTEXT_LENGTH, isServedModel, VOCAB_SIZE } from '../../../shared/src/model-facts.ts';
import type { AppEnv } from '../app-env.ts';
import { MAX_CODE_UNITS_PER_TOKEN } from '../completions/encode.ts';
import { preview, rejectUnknown, requireObject, wellFormedString } from '../http/fields.ts';
import { readJsonBody } from '../http/json-body.ts';
import { edgeSettings } from '../settings.ts';
import { loadTokenizer } from '../tokenizer.ts';

/** No completion holds more ids than the context, so detokenizing more is never needed. */
export const MAX_DETOKENIZE_IDS = CONTEXT_LENGTH;
/** Longer text needs more tokens than the context has (see completions/encode.ts). */
export const MAX_TOKENIZE_CODE_UNITS = MAX_CODE_UNITS_PER_TOKEN * CONTEXT_LENGTH;

function checkModel(body: Record<string, unknown>): void {
  if (body.model === undefined || body.model === null || isServedModel(body.model)) return;
  throw new ApiError(404, 'invalid_request_error', `The model ${preview(body.model)} does not exist.`, {
    param: 'model',
    code: 'model_not_found',
  });
}

export const tokenize = new Hono<AppEnv>();

tokenize.post('/tokenize', async (c) => {
  const body = requireObject(await readJsonBody(c.req.raw, edgeSettings(c.env).maxBodyBytes));
  rejectUnknown(body, new Set(['model', 'prompt']));
  checkModel(body);
  if (body.prompt === undefined) throw badRequest("Missing required parameter: 'prompt'.", 'prompt');
  const prompt = wellFormedString(body.prompt, 'prompt');
  if (prompt.length > MAX_TOKENIZE_CODE_UNITS) {
    throw badRequest(
      `'prompt' has ${prompt.length} characters; at most ${MAX_TOKENIZE_CODE_UNITS} can fit in the ${CONTEXT_LENGTH}-token context.`,
      'prompt',
      'context_length_exceeded',
    );
  }
  const tokens = (await loadTokenizer()).encode(prompt);
  return c.json({ tokens, count: tokens.length, max_model_len: CONTEXT_LENGTH });
});

tokenize.post('/detokenize', async (c) => {
  const body = requireObject(await readJsonBody(c.req.raw, edgeSettings(c.env).maxBodyBytes));
  rejectUnknown(body, new Set(['model', 'tokens']));
  checkModel(body);
  const tokens = body.tokens;
  if (!Array.isArray(tokens)) throw badRequest("'tokens' must be an array of token ids.", 'tokens');
  if (tokens.length > MAX_DETOKENIZE_IDS) {
    throw badRequest(
      `'tokens' holds ${tokens.length} ids; at most ${MAX_DETOKENIZE_IDS} (the context length) are decoded at once.`,
      'tokens',
    );
  }
  for (const id of tokens) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) {
      throw badRequest(`'tokens' must hold integers in [0, ${VOCAB_SIZE}); got ${preview(id)}.`, 'tokens');
    }
  }
  return c.json({ prompt: (await loadTokenizer()).decode(tokens as number[]) });
});
