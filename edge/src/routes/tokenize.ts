// POST /v1/tokenize and /v1/detokenize: let clients count tokens exactly as the API does.

import { Hono } from 'hono';
import { ApiError, badRequest } from '../../../shared/src/errors.ts';
import { CONTEXT_LENGTH, MODEL_ID, VOCAB_SIZE } from '../../../shared/src/model-facts.ts';
import type { AppEnv } from '../app-env.ts';
import { rejectUnknown, requireObject, wellFormedString } from '../http/fields.ts';
import { readJsonBody } from '../http/json-body.ts';
import { edgeSettings } from '../settings.ts';
import { loadTokenizer } from '../tokenizer.ts';

function checkModel(body: Record<string, unknown>): void {
  if (body.model === undefined || body.model === null || body.model === MODEL_ID) return;
  throw new ApiError(404, 'invalid_request_error', `The model '${String(body.model)}' does not exist.`, {
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
  const tokens = (await loadTokenizer()).encode(prompt);
  return c.json({ tokens, count: tokens.length, max_model_len: CONTEXT_LENGTH });
});

tokenize.post('/detokenize', async (c) => {
  const body = requireObject(await readJsonBody(c.req.raw, edgeSettings(c.env).maxBodyBytes));
  rejectUnknown(body, new Set(['model', 'tokens']));
  checkModel(body);
  const tokens = body.tokens;
  if (!Array.isArray(tokens)) throw badRequest("'tokens' must be an array of token ids.", 'tokens');
  for (const id of tokens) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) {
      throw badRequest(
        `'tokens' must hold integers in [0, ${VOCAB_SIZE}); got ${JSON.stringify(id)}.`,
        'tokens',
      );
    }
  }
  return c.json({ prompt: (await loadTokenizer()).decode(tokens as number[]) });
});
