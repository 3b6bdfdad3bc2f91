import type { KeyLimiter } from './limiter.ts';

/** Bindings declared in wrangler.toml (vars, secrets, KV, Durable Objects); settings in EDGE_SETTINGS. */
export interface Env {
  GPU_FUNCTION_URL: string;
  GPU_HMAC_SECRET: string;
  GPU_INVOKER_KEY?: string;
  ADMIN_TOKEN?: string;
  COLD_START_TIMEOUT_S?: string;
  STREAM_IDLE_TIMEOUT_S?: string;
  MAX_BODY_BYTES?: string;
  DEFAULT_REQUESTS_PER_MINUTE?: string;
  DEFAULT_TOKENS_PER_MINUTE?: string;
  DEFAULT_TOKENS_PER_DAY?: string;
  DEFAULT_TOKENS_PER_MONTH?: string;
  CHAT_TEMPLATE?: string;
  CORS_ALLOWED_ORIGINS?: string;
  MODEL_BUILD?: string;
  API_KEYS: KVNamespace;
  KEY_LIMITER: DurableObjectNamespace<KeyLimiter>;
}
