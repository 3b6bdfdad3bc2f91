// A full cache disk while downloading weights, with a real ENOSPC (/dev/full) under a real ranged
// GET from a real S3-compatible server: reported as a full disk, at once, not as "cannot reach
// object storage" after five retries.
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchRangeOnce, withRetries } from '../../../gpu-function/src/weights/fetch-range.ts';
import { describeS3Error, isDiskFull } from '../../../gpu-function/src/weights/s3-client.ts';
import { s3Client } from './helpers/model.ts';
import { LocalS3 } from './helpers/s3rver.ts';

const HAVE_DEV_FULL = existsSync('/dev/full');

describe.skipIf(!HAVE_DEV_FULL)('a full cache disk', () => {
  let s3: LocalS3;
  beforeAll(async () => {
    s3 = await LocalS3.create();
    const client = s3Client(s3);
    await client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: 'm/weights.bin', Body: Buffer.alloc(2 << 20, 7) }),
    );
    client.destroy();
  });
  afterAll(() => s3?.dispose());

  it('is a permanent error that says so', async () => {
    const client = s3Client(s3);
    const full = await open('/dev/full', 'w');
    let attempts = 0;
    const err = await withRetries(
      () => {
        attempts++;
        return fetchRangeOnce({
          client,
          bucket: s3.bucket,
          key: 'm/weights.bin',
          etag: '',
          objectSize: 2 << 20,
          start: 0,
          end: 2 << 20,
          file: full,
          stallTimeoutMs: 5000,
          signal: new AbortController().signal,
          onBytes: () => {},
        });
      },
      { attempts: 5, signal: new AbortController().signal, onRetry: () => {} },
    ).catch((e: unknown) => e);
    await full.close();
    client.destroy();
    expect((err as { code?: string }).code).toBe('ENOSPC');
    expect(isDiskFull(err)).toBe(true);
    expect(attempts).toBe(1);
    const message = describeS3Error(err, 's3://models/m/weights.bin');
    expect(message).toMatch(/^no space left on the disk of the model cache \(MODEL_CACHE_DIR\)/);
    expect(message).not.toMatch(/cannot reach object storage/);
  });
});
