import { Hono } from 'hono';
import { ApiError } from '../../../shared/src/errors.ts';
import { CONTEXT_LENGTH, MODEL_ID } from '../../../shared/src/model-facts.ts';
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
};

export const models = new Hono<AppEnv>();

models.get('/', (c) => c.json({ object: 'list', data: [model] }));
models.get('/:id', (c) => {
  if (c.req.param('id') !== MODEL_ID) {
    throw new ApiError(
      404,
      'invalid_request_error',
      `The model ${preview(c.req.param('id'))} does not exist.`,
      {
        param: 'model',
        code: 'model_not_found',
      },
    );
  }
  return c.json(model);
});
