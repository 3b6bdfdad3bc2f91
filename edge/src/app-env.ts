import type { Env } from './env.ts';
import type { KeyRecord } from './keys/store.ts';

/** Hono's view of the worker: its bindings, and the API key once a request is authenticated. */
export interface AppEnv {
  Bindings: Env;
  Variables: { apiKey: KeyRecord };
}
