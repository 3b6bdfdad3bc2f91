// Parts of the local stack on their own: its secrets file, the model given as MODEL_URI, how the
// GPU function's log lines are shown, and the removal of older demo models (against the real
// local object storage). test/e2e runs the whole stack.
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheDirFor } from '../../../gpu-function/src/model-host.ts';
import { createS3Client } from '../../../gpu-function/src/weights/s3-client.ts';
import { givenModel } from '../../../scripts/lib/stack/given-model.ts';
import { formatServiceLine, memoryLog } from '../../../scripts/lib/stack/log.ts';
import { pruneOldDemos } from '../../../scripts/lib/stack/prune-demos.ts';
import { BUCKET, S3_CREDENTIALS, startS3Server } from '../../../scripts/lib/stack/s3-server.ts';
import {
  API_KEY_FORMAT,
  ensureDevVars,
  localApiKey,
  parseDevVars,
} from '../../../scripts/lib/stack/secrets.ts';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'jslm-stack-parts-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the edge secrets file', () => {
  it('is made with both secrets, private, and kept on the next run', () => {
    const file = path.join(scratch, 'new', '.dev.vars');
    const made = ensureDevVars(file);
    expect(made.added).toEqual(['GPU_HMAC_SECRET', 'ADMIN_TOKEN']);
    expect(made.secrets.GPU_HMAC_SECRET).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(made.secrets.ADMIN_TOKEN).not.toBe(made.secrets.GPU_HMAC_SECRET);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = ensureDevVars(file);
    expect(again).toEqual({ secrets: made.secrets, added: [] });
  });

  it('adds only what is missing and leaves the rest of the file alone', () => {
    const file = path.join(scratch, 'partial.vars');
    writeFileSync(file, '# mine\nCOLD_START_TIMEOUT_S=600\nADMIN_TOKEN="quoted token"');
    const { secrets, added } = ensureDevVars(file);
    expect(added).toEqual(['GPU_HMAC_SECRET']);
    expect(secrets.ADMIN_TOKEN).toBe('quoted token');
    const text = readFileSync(file, 'utf8');
    expect(
      text.startsWith('# mine\nCOLD_START_TIMEOUT_S=600\nADMIN_TOKEN="quoted token"\nGPU_HMAC_SECRET='),
    ).toBe(true);
    expect(parseDevVars(text).get('COLD_START_TIMEOUT_S')).toBe('600');
  });

  it('is private (0600) even when it existed with looser permissions', () => {
    const missing = path.join(scratch, 'readable.vars');
    writeFileSync(missing, 'ADMIN_TOKEN=mine\n', { mode: 0o644 });
    chmodSync(missing, 0o644);
    ensureDevVars(missing); // adds GPU_HMAC_SECRET to the existing file
    expect(statSync(missing).mode & 0o777).toBe(0o600);

    const complete = path.join(scratch, 'complete.vars');
    writeFileSync(complete, `ADMIN_TOKEN=${'a'.repeat(43)}\nGPU_HMAC_SECRET=${'b'.repeat(43)}\n`);
    chmodSync(complete, 0o644);
    expect(ensureDevVars(complete).added).toEqual([]);
    expect(statSync(complete).mode & 0o777).toBe(0o600);
  });
});

describe('the local API key', () => {
  it('is made once and kept; LOCAL_API_KEY fixes it but must be long enough', () => {
    const dir = path.join(scratch, 'key');
    const made = localApiKey(dir, undefined);
    expect(made.source).toBe('new');
    expect(made.key).toMatch(API_KEY_FORMAT);
    expect(localApiKey(dir, undefined).key).toBe(made.key);
    const fixed = `sk-jslm-${'a'.repeat(32)}`;
    expect(localApiKey(dir, fixed)).toEqual({ key: fixed, source: 'LOCAL_API_KEY' });
    expect(() => localApiKey(dir, 'sk-jslm-short')).toThrow(/LOCAL_API_KEY must be/);
  });
});

describe('MODEL_URI', () => {
  const client = new S3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:1' });

  it('serves a converted folder in place, and refuses a folder without manifest.json', async () => {
    const dir = path.join(scratch, 'converted');
    mkdirSync(dir);
    await expect(givenModel(dir, client, 'models')).rejects.toThrow(/not a converted model folder/);
    writeFileSync(path.join(dir, 'manifest.json'), '{}');
    await expect(givenModel(dir, client, 'models')).resolves.toMatchObject({ kind: 'converted', uri: dir });
  });

  it('must name the local bucket', async () => {
    await expect(givenModel('s3://elsewhere/m', client, 'models')).rejects.toThrow(
      /only the bucket 'models'/,
    );
  });
});

describe('GPU function log lines', () => {
  it('are shown as event key=value with their level; other lines pass through', () => {
    const line = JSON.stringify({ time: 't', level: 'warn', event: 'load.retry', file: 'a b', n: 2 });
    expect(formatServiceLine(line)).toEqual({
      text: 'load.retry file="a b" n=2',
      level: 'warn',
      event: 'load.retry',
    });
    expect(formatServiceLine('plain text')).toEqual({ text: 'plain text', level: 'info' });
  });
});

describe('older demo models', () => {
  it('are removed from the bucket and the GPU cache; the kept one and checkpoints stay', async () => {
    const log = memoryLog();
    const s3 = await startS3Server({ dir: path.join(scratch, 's3'), port: 0, log });
    const client = createS3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      ...S3_CREDENTIALS,
      sessionToken: undefined,
    });
    try {
      const keys = [
        'demo-old/manifest.json',
        'demo-old/model.onnx',
        'demo-new/manifest.json',
        'checkpoints/demo-x/a',
      ];
      for (const Key of keys) await client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'x' }));
      const cacheRoot = path.join(scratch, 'cache');
      const oldCache = cacheDirFor(cacheRoot, { bucket: BUCKET, prefix: 'demo-old' });
      const newCache = cacheDirFor(cacheRoot, { bucket: BUCKET, prefix: 'demo-new' });
      mkdirSync(oldCache, { recursive: true });
      mkdirSync(newCache, { recursive: true });

      await pruneOldDemos({ client, bucket: BUCKET, keep: 'demo-new', cacheRoot, log });
      const left = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
      expect((left.Contents ?? []).map((c) => c.Key).sort()).toEqual([
        'checkpoints/demo-x/a',
        'demo-new/manifest.json',
      ]);
      expect(existsSync(oldCache)).toBe(false);
      expect(existsSync(newCache)).toBe(true);
      expect(log.text()).toMatch(/removed the older demo model\(s\): demo-old/);
    } finally {
      client.destroy();
      await s3.process.stop(2000);
    }
  });
});
