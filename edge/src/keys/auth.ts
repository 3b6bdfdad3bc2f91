import { createMiddleware } from 'hono/factory';
import { unauthorized } from '../../../shared/src/errors.ts';
import type { AppEnv } from '../app-env.ts';
import type { Env } from '../env.ts';
import { rateLimitHeaders, withHeaders } from '../http/ratelimit-headers.ts';
import { configOf, limiterOf } from '../limits/client.ts';
import { equalConstantTime, plausibleApiKey, sha256Hex } from './api-key.ts';
import { recentKey, rememberKey } from './recent-keys.ts';
import { findKeyByHash, type KeyRecord } from './store.ts';

const BEARER = /^Bearer\s+(\S+)\s*$/i;

export interface AuthOptions {
  /**
   * May answer from the isolate's recent keys instead of KV. Only for routes whose limiter call
   * refuses a revoked key (see recent-keys.ts).
   */
  recent: boolean;
}

/** Finds the key of `Authorization: Bearer <key>` by its hash; 401 for anything else. */
export async function authenticate(
  env: Env,
  authorization: string | undefined,
  options: AuthOptions = { recent: false },
): Promise<KeyRecord> {
  if (!authorization) {
    throw unauthorized("Missing API key: send 'Authorization: Bearer <key>'.", 'missing_api_key');
  }
  const key = BEARER.exec(authorization)?.[1];
  if (!key || !plausibleApiKey(key)) throw unauthorized('Incorrect API key provided.');
  const hash = await sha256Hex(key);
  const known = options.recent ? recentKey(hash) : null;
  if (known) return known;
  const record = await findKeyByHash(env.API_KEYS, hash);
  if (!record || !equalConstantTime(record.hash, hash)) throw unauthorized('Incorrect API key provided.');
  rememberKey(record); // forgets it when disabled
  if (record.disabled) throw unauthorized('This API key has been revoked.');
  return record;
}

/**
 * Authenticates the request, then makes sure its response carries the key's x-ratelimit-*
 * headers even when the handler did not consult the limiter (errors, free endpoints).
 */
export const requireApiKey = (options: AuthOptions = { recent: false }) =>
  createMiddleware<AppEnv>(async (c, next) => {
    const record = await authenticate(c.env, c.req.header('authorization'), options);
    c.set('apiKey', record);
    await next();
    if (!c.res.headers.has('x-ratelimit-limit-requests')) {
      const state = await limiterOf(c.env, record.id).state(configOf(record));
      c.res = withHeaders(c.res, rateLimitHeaders(state));
    }
  });
