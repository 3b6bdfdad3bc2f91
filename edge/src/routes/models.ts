import { Hono } from 'hono';
import { ApiError } from '../../../shared/src/errors.ts';
import { CONTEXT_LENGTH, isServedModel, MODEL_ID } from '../../../shared/src/model-facts.ts';
import type { AppEnv } from '../app-env.ts';
import { preview } from '../http/fields.ts';

/** Fixed: the day the model was published (2023-08-10), so listings do not change between calls. */
const MODEL_CREATED = 1691625600;

const model = {
  id: MODEL_ID,
  object: 'model',
  created: MODEL_CREATED,
  owned_by: 'stabilityai',
  context_length: CONTEXT_LENGTH,
  // vLLM's name for the same, which evaluation tools read.
  max_model_len: CONTEXT_LENGTH,
};

export const models = new Hono<AppEnv>();

models.get('/', (c) => c.json({ object: 'list', data: [model] }));
// An alias holds a slash (stabilityai/…), sent as is or as %2F: the id is the rest of the path.
models.get('/:id{.+}', (c) => {
  const id = c.req.param('id');
  if (!isServedModel(id)) {
    throw new ApiError(404, 'invalid_request_error', `The model ${preview(id)} does not exist.`, {
      param: 'model',
      code: 'model_not_found',
    });
  }
  return c.json(model);
});
