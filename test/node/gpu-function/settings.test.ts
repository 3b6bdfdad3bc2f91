// The GPU function's settings: defaults, validation with a clear message, secrets redacted.
import { describe, expect, it } from 'vitest';
import { readSettings } from '../../../gpu-function/src/settings.ts';
import { GPU_FUNCTION_SETTINGS, redactSettings, SettingsError } from '../../../shared/src/config.ts';

describe('GPU function settings', () => {
  it('has working defaults for everything', () => {
    const { config } = readSettings({});
    expect(config).toMatchObject({
      port: 8788,
      preload: false,
      idleTimeoutMs: 300_000,
      drainTimeoutMs: 30_000,
      queueMax: 64,
      load: { concurrency: 8, partBytes: 16 * 2 ** 20, stallTimeoutMs: 15_000, retries: 5 },
    });
    expect(config.hmacSecret).toBeUndefined();
    expect(config.modelUri).toBeUndefined();
  });

  it('rejects malformed numbers naming the setting', () => {
    expect(() => readSettings({ IDLE_TIMEOUT_S: 'soon' })).toThrow(SettingsError);
    expect(() => readSettings({ IDLE_TIMEOUT_S: 'soon' })).toThrow(/IDLE_TIMEOUT_S/);
    expect(() => readSettings({ LOAD_CONCURRENCY: '0' })).toThrow(
      /LOAD_CONCURRENCY must be a number in \[1, 256\]/,
    );
    expect(() => readSettings({ QUEUE_MAX: '2.5' })).toThrow(/QUEUE_MAX must be an integer/);
    expect(() => readSettings({ MODEL_URI: 's3://Not_A_Bucket/x' })).toThrow(/MODEL_URI: 'Not_A_Bucket'/);
  });

  it('refuses a signing secret shorter than 32 bytes, without showing it', () => {
    const short = 'short-secret-31-bytes-long-xxxx';
    expect(new TextEncoder().encode(short).byteLength).toBe(31);
    expect(() => readSettings({ GPU_HMAC_SECRET: short })).toThrow(
      /GPU_HMAC_SECRET is 31 bytes; it must be at least 32/,
    );
    try {
      readSettings({ GPU_HMAC_SECRET: short });
    } catch (err) {
      expect((err as Error).message).not.toContain(short);
    }
    expect(readSettings({ GPU_HMAC_SECRET: `${short}y` }).config.hmacSecret).toBe(`${short}y`);
  });

  it('never shows secrets in the loggable copy', () => {
    const env = {
      GPU_HMAC_SECRET: 'hmac-123-of-at-least-thirty-two-bytes',
      AWS_ACCESS_KEY_ID: 'AKIA-456',
      AWS_SECRET_ACCESS_KEY: 'secret-789',
      MODEL_URI: 's3://models/jslm/v1',
    };
    const { raw } = readSettings(env);
    const shown = JSON.stringify(redactSettings(GPU_FUNCTION_SETTINGS, raw));
    for (const v of ['hmac-123', 'AKIA-456', 'secret-789']) expect(shown).not.toContain(v);
    expect(shown).toContain('s3://models/jslm/v1');
  });
});
