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

app.use('/v1/*', requireApiKey);
app.post('/v1/completions', completions);
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
