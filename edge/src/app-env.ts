import type { Env } from './env.ts';
import type { KeyRecord } from './keys/store.ts';

/**
 * Hono's view of the worker: its bindings, the API key once a request is authenticated, and the
 * x-ratelimit-* headers once the limiter answered (every response of the key carries them), and
 * the request's id (http/request-id.ts).
 */
export interface AppEnv {
  Bindings: Env;
  Variables: { apiKey: KeyRecord; rateHeaders: Record<string, string>; requestId: string };
}
