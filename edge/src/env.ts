import type { KeyLimiter } from './limiter.ts';

/** Bindings declared in wrangler.toml (vars, secrets, KV, Durable Objects). */
export interface Env {
  GPU_FUNCTION_URL: string;
  GPU_HMAC_SECRET: string;
  ADMIN_TOKEN: string;
  API_KEYS: KVNamespace;
  KEY_LIMITER: DurableObjectNamespace<KeyLimiter>;
}
