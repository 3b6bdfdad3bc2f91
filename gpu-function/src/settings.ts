// Typed view of the GPU function's settings (declared in shared/src/config.ts). Numbers are
// checked here, once, so a typo in the environment stops the process with a clear message.
import {
  GPU_FUNCTION_SETTINGS,
  loadSettings,
  type Settings,
  SettingsError,
} from '../../shared/src/config.ts';
import { secretProblem } from '../../shared/src/signing.ts';
import { batchDefaults } from './batch-defaults.ts';
import { parseS3Uri } from './weights/s3-uri.ts';

export type RawSettings = Settings<typeof GPU_FUNCTION_SETTINGS>;

export interface ServiceConfig {
  host: string;
  port: number;
  hmacSecret: string | undefined;
  modelUri: string | undefined;
  s3: {
    endpoint: string | undefined;
    region: string;
    accessKeyId: string | undefined;
    secretAccessKey: string | undefined;
    sessionToken: string | undefined;
  };
  cacheDir: string;
  preload: boolean;
  idleTimeoutMs: number;
  drainTimeoutMs: number;
  queueMax: number;
  load: { concurrency: number; partBytes: number; stallTimeoutMs: number; retries: number };
  heartbeatMs: number;
  batch: { maxRows: number; maxRowsPerKey?: number; kvBudgetBytes: number; chunkTargetMs: number };
}

function numberSetting(raw: RawSettings, name: keyof RawSettings, min: number, max: number): number {
  const text = raw[name] ?? '';
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
    throw new SettingsError(`setting ${name} must be a number in [${min}, ${max}]; got '${text}'`);
  }
  return value;
}

function intSetting(raw: RawSettings, name: keyof RawSettings, min: number, max: number): number {
  const value = numberSetting(raw, name, min, max);
  if (!Number.isInteger(value)) throw new SettingsError(`setting ${name} must be an integer; got ${value}`);
  return value;
}

function batchSettings(raw: RawSettings): ServiceConfig['batch'] {
  const defaults = batchDefaults();
  const maxRows = raw.MAX_BATCH === undefined ? defaults.maxRows : intSetting(raw, 'MAX_BATCH', 1, 1024);
  return {
    maxRows,
    ...(raw.MAX_ROWS_PER_KEY === undefined
      ? {}
      : { maxRowsPerKey: intSetting(raw, 'MAX_ROWS_PER_KEY', 1, maxRows) }),
    kvBudgetBytes:
      raw.KV_CACHE_BYTES === undefined
        ? defaults.kvBudgetBytes
        : intSetting(raw, 'KV_CACHE_BYTES', 1024 * 1024, Number.MAX_SAFE_INTEGER),
    chunkTargetMs: numberSetting(raw, 'CHUNK_TARGET_MS', 1, 60_000),
  };
}

export function readSettings(env: Record<string, string | undefined>): {
  raw: RawSettings;
  config: ServiceConfig;
} {
  const raw = loadSettings(GPU_FUNCTION_SETTINGS, env);
  if (raw.MODEL_URI?.startsWith('s3://')) {
    try {
      parseS3Uri(raw.MODEL_URI);
    } catch (err) {
      throw new SettingsError(`setting MODEL_URI: ${(err as Error).message}`);
    }
  }
  // Unset is allowed (development: generation answers 503); a weak secret is not.
  const secretIssue = raw.GPU_HMAC_SECRET === undefined ? null : secretProblem(raw.GPU_HMAC_SECRET);
  if (secretIssue) throw new SettingsError(`setting GPU_HMAC_SECRET ${secretIssue}`);
  const config: ServiceConfig = {
    host: raw.HOST ?? '0.0.0.0',
    port: intSetting(raw, 'PORT', 0, 65535),
    hmacSecret: raw.GPU_HMAC_SECRET,
    modelUri: raw.MODEL_URI,
    s3: {
      endpoint: raw.S3_ENDPOINT,
      region: raw.S3_REGION ?? 'us-east-1',
      accessKeyId: raw.AWS_ACCESS_KEY_ID,
      secretAccessKey: raw.AWS_SECRET_ACCESS_KEY,
      sessionToken: raw.AWS_SESSION_TOKEN,
    },
    cacheDir: raw.MODEL_CACHE_DIR ?? '.cache/models',
    preload: raw.PRELOAD === '1' || raw.PRELOAD === 'true',
    idleTimeoutMs: numberSetting(raw, 'IDLE_TIMEOUT_S', 0, 86_400 * 365) * 1000,
    drainTimeoutMs: numberSetting(raw, 'DRAIN_TIMEOUT_S', 0, 3600) * 1000,
    queueMax: intSetting(raw, 'QUEUE_MAX', 0, 100_000),
    load: {
      concurrency: intSetting(raw, 'LOAD_CONCURRENCY', 1, 256),
      partBytes: Math.round(numberSetting(raw, 'LOAD_PART_MB', 0.0625, 1024) * 1024 * 1024),
      stallTimeoutMs: numberSetting(raw, 'LOAD_STALL_TIMEOUT_S', 0.1, 3600) * 1000,
      retries: intSetting(raw, 'LOAD_RETRIES', 1, 100),
    },
    heartbeatMs: intSetting(raw, 'HEARTBEAT_MS', 10, 600_000),
    batch: batchSettings(raw),
  };
  return { raw, config };
}
