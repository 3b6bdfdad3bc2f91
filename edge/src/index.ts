import { Hono } from 'hono';
import { toApiError } from '../../shared/src/errors.ts';
import type { Env } from './env.ts';

export { KeyLimiter } from './limiter.ts';

const app = new Hono<{ Bindings: Env }>();

app.get('/healthz', (c) => c.json({ status: 'ok' }));
app.onError((err) => toApiError(err).toResponse());
app.notFound((c) =>
  c.json(
    {
      error: {
        message: `Unknown route ${c.req.method} ${c.req.path}.`,
        type: 'invalid_request_error',
        param: null,
        code: 'unknown_url',
      },
    },
    404,
  ),
);

export default app;
