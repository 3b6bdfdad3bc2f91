import { Hono } from 'hono';
import { ApiError, toApiError } from '../../shared/src/errors.ts';
import type { AppEnv } from './app-env.ts';
import { corsPolicy } from './http/cors.ts';
import { requestId } from './http/request-id.ts';
import { countAgainstLimits, requireApiKey } from './keys/auth.ts';
import { admin } from './routes/admin.ts';
import { chatCompletions } from './routes/chat.ts';
import { completions } from './routes/completions.ts';
import { models } from './routes/models.ts';
import { tokenize } from './routes/tokenize.ts';

export { KeyLimiter } from './limiter.ts';

const app = new Hono<AppEnv>();

// Every answer carries x-request-id, errors and preflights too.
app.use('*', requestId);

app.get('/healthz', (c) => c.json({ status: 'ok' }));

// Browsers: CORS headers for allowed origins, and preflights answered before any key is asked.
app.use('/v1/*', corsPolicy);

// Every /v1 route asks the key's limiter object before it does any work: completions admit and
// reserve (routes/completions.ts, routes/chat.ts), the others count against the request limit.
// That is also why a key may come from the isolate's recent ones (keys/recent-keys.ts).
app.use('/v1/*', requireApiKey);
app.post('/v1/completions', completions);
app.post('/v1/chat/completions', chatCompletions);
app.use('/v1/models/*', countAgainstLimits); // also matches /v1/models itself
app.use('/v1/tokenize', countAgainstLimits);
app.use('/v1/detokenize', countAgainstLimits);
app.route('/v1/models', models);
app.route('/v1', tokenize);

app.route('/admin', admin);

app.onError((err, c) => {
  const error = toApiError(err);
  if (!(err instanceof ApiError)) {
    console.error(`unhandled (${c.get('requestId')}): ${err instanceof Error ? err.stack : String(err)}`);
  }
  return error.toResponse();
});
app.notFound((c) =>
  new ApiError(404, 'invalid_request_error', `Unknown route ${c.req.method} ${c.req.path}.`, {
    code: 'unknown_url',
  }).toResponse(),
);

export default app;
