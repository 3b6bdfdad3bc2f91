import { EDGE_SETTINGS, loadSettings, SettingsError } from '../../shared/src/config.ts';
import { secretProblem } from '../../shared/src/signing.ts';
import { type ChatTemplate, parseChatTemplate } from './chat/template.ts';
import { parseServiceAccountKey, type ServiceAccountKey } from './invoker/service-account.ts';
import type { KeyLimits } from './limits/types.ts';

/** The edge's settings, parsed once per environment object. */
export interface EdgeSettings {
  gpuFunctionUrl: string;
  hmacSecret: string;
  /** Set where the GPU function sits behind Cloud Run's invoker IAM. */
  invoker: ServiceAccountKey | undefined;
  adminToken: string | undefined;
  coldStartTimeoutMs: number;
  streamIdleTimeoutMs: number;
  maxBodyBytes: number;
  /** Completions (prompts x n) one request may ask for. */
  maxChoices: number;
  defaultLimits: KeyLimits;
  /** How /v1/chat/completions turns messages into a prompt. */
  chatTemplate: ChatTemplate;
  /** Origins browsers may call from: a list, '*' for any, or none (empty). */
  corsOrigins: readonly string[] | '*';
  /** `system_fingerprint` of every completion: `fp_` + MODEL_BUILD. */
  systemFingerprint: string;
}

function positiveInteger(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new SettingsError(`${name} must be a positive integer`);
  return n;
}

/** CORS_ALLOWED_ORIGINS: `*`, or origins (scheme://host[:port]) separated by commas. */
function corsOrigins(value: string | undefined): readonly string[] | '*' {
  const list = (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (list.length === 1 && list[0] === '*') return '*';
  for (const origin of list) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {}
    if (!parsed || parsed.origin !== origin || parsed.origin === 'null') {
      throw new SettingsError(
        `CORS_ALLOWED_ORIGINS must be '*' or origins like https://app.example.com (no path, no trailing slash), comma-separated; got ${JSON.stringify(origin.slice(0, 80))}`,
      );
    }
  }
  return list;
}

const MODEL_BUILD = /^[A-Za-z0-9._-]{1,64}$/;

const cache = new WeakMap<object, EdgeSettings>();

export function edgeSettings(env: object): EdgeSettings {
  let settings = cache.get(env);
  if (settings) return settings;
  const raw = loadSettings(EDGE_SETTINGS, env as Record<string, string | undefined>);
  const weak = secretProblem(raw.GPU_HMAC_SECRET);
  if (weak) throw new SettingsError(`GPU_HMAC_SECRET ${weak}`);
  if (!MODEL_BUILD.test(raw.MODEL_BUILD ?? '')) {
    throw new SettingsError('MODEL_BUILD must be 1 to 64 letters, digits, dots, underscores or hyphens');
  }
  settings = {
    gpuFunctionUrl: (raw.GPU_FUNCTION_URL ?? '').replace(/\/+$/, ''),
    hmacSecret: raw.GPU_HMAC_SECRET ?? '',
    invoker: raw.GPU_INVOKER_KEY ? parseServiceAccountKey(raw.GPU_INVOKER_KEY) : undefined,
    adminToken: raw.ADMIN_TOKEN,
    coldStartTimeoutMs: positiveInteger('COLD_START_TIMEOUT_S', raw.COLD_START_TIMEOUT_S) * 1000,
    streamIdleTimeoutMs: positiveInteger('STREAM_IDLE_TIMEOUT_S', raw.STREAM_IDLE_TIMEOUT_S) * 1000,
    maxBodyBytes: positiveInteger('MAX_BODY_BYTES', raw.MAX_BODY_BYTES),
    maxChoices: positiveInteger('MAX_CHOICES', raw.MAX_CHOICES),
    defaultLimits: {
      requests_per_minute: positiveInteger('DEFAULT_REQUESTS_PER_MINUTE', raw.DEFAULT_REQUESTS_PER_MINUTE),
      tokens_per_minute: positiveInteger('DEFAULT_TOKENS_PER_MINUTE', raw.DEFAULT_TOKENS_PER_MINUTE),
      tokens_per_day: positiveInteger('DEFAULT_TOKENS_PER_DAY', raw.DEFAULT_TOKENS_PER_DAY),
      tokens_per_month: positiveInteger('DEFAULT_TOKENS_PER_MONTH', raw.DEFAULT_TOKENS_PER_MONTH),
      concurrent_requests: positiveInteger('DEFAULT_CONCURRENT_REQUESTS', raw.DEFAULT_CONCURRENT_REQUESTS),
    },
    chatTemplate: parseChatTemplate(raw.CHAT_TEMPLATE ?? 'dialogue'),
    corsOrigins: corsOrigins(raw.CORS_ALLOWED_ORIGINS),
    systemFingerprint: `fp_${raw.MODEL_BUILD ?? ''}`,
  };
  cache.set(env, settings);
  return settings;
}
