// One source of truth for settings: every variable either service reads is declared here with
// its default and meaning. Code reads settings only through `loadSettings`; infra and docs are
// checked against these tables.

export interface SettingSpec {
  /** What it means, for the docs table. */
  doc: string;
  /** Default when unset; `undefined` means required (or optional when `optional` is set). */
  default?: string;
  optional?: boolean;
  /** Secrets are never logged or echoed. */
  secret?: boolean;
}

export type SettingsSpec = Record<string, SettingSpec>;

export type Settings<S extends SettingsSpec> = { readonly [K in keyof S]: string | undefined };

export class SettingsError extends Error {
  override name = 'SettingsError';
}

/** Reads every declared setting from `source`, applying defaults; fails on missing required ones. */
export function loadSettings<S extends SettingsSpec>(
  spec: S,
  source: Record<string, string | undefined>,
): Settings<S> {
  const out: Record<string, string | undefined> = {};
  const missing: string[] = [];
  for (const [name, s] of Object.entries(spec)) {
    const raw = source[name];
    const value = raw === undefined || raw === '' ? s.default : raw;
    if (value === undefined && !s.optional) missing.push(name);
    out[name] = value;
  }
  if (missing.length > 0) throw new SettingsError(`missing required setting(s): ${missing.join(', ')}`);
  return out as Settings<S>;
}

/** A copy safe to log: secrets are replaced by whether they are set. */
export function redactSettings<S extends SettingsSpec>(
  spec: S,
  settings: Settings<S>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, s] of Object.entries(spec)) {
    const v = settings[name as keyof S];
    out[name] = s.secret ? (v ? '(set)' : '(unset)') : (v ?? '(unset)');
  }
  return out;
}

/** Settings of the GPU function (a Node process; read from process.env). */
export const GPU_FUNCTION_SETTINGS = {
  HOST: { doc: 'Interface the HTTP server binds to.', default: '0.0.0.0' },
  PORT: { doc: 'HTTP port.', default: '8788' },
  GPU_HMAC_SECRET: {
    doc: 'Shared secret (at least 32 bytes) that signs every request from the edge; without it /v1/generate, /readyz and /metrics answer 503.',
    optional: true,
    secret: true,
  },
  MODEL_URI: {
    doc: 'Where the converted model lives: s3://bucket/prefix (or a local converted folder for development).',
    optional: true,
  },
  S3_ENDPOINT: {
    doc: 'Endpoint of the S3-compatible storage (R2, MinIO, a local server); unset means AWS S3.',
    optional: true,
  },
  S3_REGION: { doc: "Storage region ('auto' for Cloudflare R2).", default: 'us-east-1' },
  AWS_ACCESS_KEY_ID: {
    doc: "Storage access key; unset means the SDK's default credential chain.",
    optional: true,
    secret: true,
  },
  AWS_SECRET_ACCESS_KEY: { doc: 'Storage secret key.', optional: true, secret: true },
  AWS_SESSION_TOKEN: { doc: 'Storage session token (temporary credentials).', optional: true, secret: true },
  MODEL_CACHE_DIR: {
    doc: 'Local folder where downloaded weights are kept and reused across restarts.',
    default: '.cache/models',
  },
  PRELOAD: { doc: 'Set to 1 to load the weights at boot instead of on the first request.', default: '0' },
  IDLE_TIMEOUT_S: {
    doc: 'Exit cleanly after this many seconds without generation requests (0 never exits).',
    default: '300',
  },
  DRAIN_TIMEOUT_S: {
    doc: 'On SIGTERM, how long in-flight streams may take to finish before they are cancelled.',
    default: '30',
  },
  QUEUE_MAX: {
    doc: 'Request parts (a prompt and up to a batch of its samples) allowed to wait for the load or for room in the batch; beyond it 503 at once.',
    default: '64',
  },
  MAX_BATCH: {
    doc: 'Rows (samples) decoded together in one batch; unset: 8 on the CPU, 32 with the CUDA provider.',
    optional: true,
  },
  MAX_ROWS_PER_KEY: {
    doc: 'Rows one API key may hold in the batch at once, so others always find room; unset: three quarters of MAX_BATCH.',
    optional: true,
  },
  KV_CACHE_BYTES: {
    doc: 'Budget of the batch key/value cache in bytes (rows x longest row x bytes per token); unset: a quarter of the RAM on the CPU, 8 GiB with the CUDA provider. Requests that do not fit wait.',
    optional: true,
  },
  CHUNK_TARGET_MS: {
    doc: 'A decode chunk (one run of the graph, after which text is streamed and newcomers join) should take about this long.',
    default: '200',
  },
  LOAD_CONCURRENCY: { doc: 'Ranged GETs in flight while downloading weights.', default: '8' },
  LOAD_PART_MB: { doc: 'Size of one ranged GET in MiB (also the resumption granularity).', default: '16' },
  LOAD_STALL_TIMEOUT_S: {
    doc: 'A download connection that delivers no bytes for this long is dropped and retried.',
    default: '15',
  },
  LOAD_RETRIES: { doc: 'Attempts per ranged GET before the load fails.', default: '5' },
  HEARTBEAT_MS: { doc: 'Interval of heartbeat frames while a request waits.', default: '2000' },
} satisfies SettingsSpec;

/** Settings of the edge worker (wrangler vars and secrets). */
export const EDGE_SETTINGS = {
  GPU_FUNCTION_URL: { doc: 'Base URL of the GPU function.', default: 'http://127.0.0.1:8788' },
  GPU_HMAC_SECRET: {
    doc: 'Signs every request from the edge to the GPU function (at least 32 bytes, the same on both sides).',
    secret: true,
  },
  GPU_INVOKER_KEY: {
    doc: 'JSON key of the Google service account allowed to invoke the GPU function (Cloud Run invoker IAM); the edge mints and caches ID tokens from it. Unset: no token is sent (the local stack).',
    optional: true,
    secret: true,
  },
  ADMIN_TOKEN: {
    doc: 'Bearer token of the admin API (`/admin/keys`); unset disables the admin API.',
    optional: true,
    secret: true,
  },
  COLD_START_TIMEOUT_S: {
    doc: 'How long a request waits (retrying with backoff) for a starting GPU function before a 503.',
    default: '120',
  },
  STREAM_IDLE_TIMEOUT_S: {
    doc: 'A generation stream that sends nothing (not even a heartbeat) for this long is failed.',
    default: '60',
  },
  MAX_BODY_BYTES: { doc: 'Largest accepted request body.', default: '262144' },
  MAX_CHOICES: {
    doc: 'Completions (prompts x n) one request may ask for; more is a 400 naming the field.',
    default: '32',
  },
  DEFAULT_REQUESTS_PER_MINUTE: { doc: 'Requests per minute of a new API key.', default: '60' },
  DEFAULT_CONCURRENT_REQUESTS: {
    doc: 'Requests a new API key may have in flight at once; one more is refused with 429.',
    default: '8',
  },
  DEFAULT_TOKENS_PER_MINUTE: {
    doc: 'Tokens (prompt + completion) per minute of a new API key.',
    default: '100000',
  },
  DEFAULT_TOKENS_PER_DAY: { doc: 'Daily token quota of a new API key (UTC days).', default: '1000000' },
  DEFAULT_TOKENS_PER_MONTH: {
    doc: 'Monthly token quota of a new API key (UTC calendar months).',
    default: '20000000',
  },
  CHAT_TEMPLATE: {
    doc: 'How /v1/chat/completions writes messages as a prompt: `dialogue` (a plain-text transcript that stops at the next user turn) or a JSON object of template fields (edge/README.md).',
    default: 'dialogue',
  },
  CORS_ALLOWED_ORIGINS: {
    doc: 'Browser origins that may call /v1, comma-separated (`https://app.example.com`), or `*` (never with credentials); unset: none. Preflights need no key.',
    optional: true,
  },
  MODEL_BUILD: {
    doc: 'Names the served weights in `system_fingerprint` (`fp_` + this; `A-Za-z0-9._-`), e.g. the first 12 hex digits of the manifest sha256 (/readyz of the GPU function).',
    default: 'jslm-base-alpha-7b',
  },
} satisfies SettingsSpec;

/** Settings of the local stack (`npm start`, scripts/start.ts); read from process.env. */
export const LOCAL_STACK_SETTINGS = {
  MODEL_CHECKPOINT: {
    doc: 'A Hugging Face checkpoint folder to convert and serve; unset serves the demo model (random weights: gibberish).',
    optional: true,
  },
  WEIGHTS: {
    doc: 'Form of the weights when `npm start` converts a model (MODEL_CHECKPOINT or the demo model): float32 (unset), or int8 / int4 (linear layers block-quantized in blocks of 32: smaller and faster on the CPU). A converted model (MODEL_URI) keeps its own form.',
    optional: true,
  },
  TOKENIZER_MODEL: {
    doc: 'The nerdstash v1 tokenizer.model; unset uses ../shared/fixtures/tokenizer/novelai.model, else downloads it (`fetch tokenizer`).',
    optional: true,
  },
  LOCAL_API_KEY: {
    doc: 'The API key `npm start` registers and prints (sk-jslm- + 32 to 128 of A-Za-z0-9_-); unset makes one on the first run and keeps it in .data/.',
    optional: true,
    secret: true,
  },
} satisfies SettingsSpec;
