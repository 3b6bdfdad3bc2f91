import { createMiddleware } from 'hono/factory';
import { unauthorized } from '../../../shared/src/errors.ts';
import type { AppEnv } from '../app-env.ts';
import type { Env } from '../env.ts';
import { rateLimitHeaders, withHeaders } from '../http/ratelimit-headers.ts';
import { countRequest } from '../limits/admission.ts';
import { configOf, limiterOf } from '../limits/client.ts';
import { equalConstantTime, plausibleApiKey, sha256Hex } from './api-key.ts';
import { recentKey, rememberKey } from './recent-keys.ts';
import { findKeyByHash, type KeyRecord } from './store.ts';

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * Finds the key of `Authorization: Bearer <key>` by its hash; 401 for anything else. A key of
 * the wrong shape is refused before any lookup. A key may come from the isolate's recent ones
 * (keys/recent-keys.ts): every /v1 route then asks the key's limiter object, which refuses a
 * revoked key at once.
 */
export async function authenticate(env: Env, authorization: string | undefined): Promise<KeyRecord> {
  if (!authorization) {
    throw unauthorized("Missing API key: send 'Authorization: Bearer <key>'.", 'missing_api_key');
  }
  const key = BEARER.exec(authorization)?.[1];
  if (!key || !plausibleApiKey(key)) throw unauthorized('Incorrect API key provided.');
  const hash = await sha256Hex(key);
  const known = recentKey(hash);
  if (known) return known;
  const record = await findKeyByHash(env.API_KEYS, hash);
  if (!record || !equalConstantTime(record.hash, hash)) throw unauthorized('Incorrect API key provided.');
  rememberKey(record); // forgets it when disabled
  if (record.disabled) throw unauthorized('This API key has been revoked.');
  return record;
}

/**
 * Authenticates the request, then makes sure its response carries the key's x-ratelimit-*
 * headers: those the limiter gave the route, or (a route that did not ask it) its current state.
 */
export const requireApiKey = createMiddleware<AppEnv>(async (c, next) => {
  const record = await authenticate(c.env, c.req.header('authorization'));
  c.set('apiKey', record);
  await next();
  if (!c.res.headers.has('x-ratelimit-limit-requests')) {
    const headers =
      c.get('rateHeaders') ?? rateLimitHeaders(await limiterOf(c.env, record.id).state(configOf(record)));
    c.res = withHeaders(c.res, headers);
  }
});

/** For routes that cost no tokens: the request counts, and a revoked key or full window is refused. */
export const countAgainstLimits = createMiddleware<AppEnv>(async (c, next) => {
  c.set('rateHeaders', await countRequest(c.env, c.get('apiKey')));
  await next();
});
