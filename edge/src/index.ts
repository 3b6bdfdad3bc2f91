import { Hono } from 'hono';
import { ApiError, toApiError } from '../../shared/src/errors.ts';
import type { AppEnv } from './app-env.ts';
import { requireApiKey } from './keys/auth.ts';
import { admin } from './routes/admin.ts';
import { completions } from './routes/completions.ts';
import { models } from './routes/models.ts';
import { tokenize } from './routes/tokenize.ts';

export { KeyLimiter } from './limiter.ts';

const app = new Hono<AppEnv>();

app.get('/healthz', (c) => c.json({ status: 'ok' }));

// A completion may find its key among the isolate's recent ones: its limiter reservation
// refuses a revoked key anyway (keys/recent-keys.ts). Every other route reads KV. The completion
// handler answers without calling next, so the '/v1/*' middleware below does not run for it.
app.post('/v1/completions', requireApiKey({ recent: true }), completions);
app.use('/v1/*', requireApiKey());
app.route('/v1/models', models);
app.route('/v1', tokenize);

app.route('/admin', admin);

app.onError((err) => {
  const error = toApiError(err);
  if (!(err instanceof ApiError))
    console.error(`unhandled: ${err instanceof Error ? err.stack : String(err)}`);
  return error.toResponse();
});
app.notFound((c) =>
  new ApiError(404, 'invalid_request_error', `Unknown route ${c.req.method} ${c.req.path}.`, {
    code: 'unknown_url',
  }).toResponse(),
);

export default app;
