import { Hono } from 'hono';
import { toApiError } from '../../shared/src/errors.ts';

/** The GPU function's HTTP surface. Routes are thin: they validate and hand work to the engine. */
export function createApp(): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.onError((err) => toApiError(err).toResponse());
  app.notFound((c) =>
    c.json({ error: { message: 'Not found.', type: 'not_found_error', param: null, code: null } }, 404),
  );
  return app;
}
