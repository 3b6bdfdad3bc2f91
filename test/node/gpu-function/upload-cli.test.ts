// `npm run -s cli -- upload`: the real command against s3rver on loopback.

import { execFile } from 'node:child_process';
import { chmod, cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertTinyModel, HAVE_FIXTURES, removeScratch, s3Client, scratchDir } from './helpers/model.ts';
import { LocalS3, S3RVER_CREDENTIALS } from './helpers/s3rver.ts';

const run = promisify(execFile);

describe.skipIf(!HAVE_FIXTURES)('upload command', () => {
  let s3: LocalS3;
  let dir: string;
  let modelDir: string;

  beforeAll(async () => {
    s3 = await LocalS3.create();
    dir = await scratchDir('upload');
    modelDir = await convertTinyModel(dir);
  });

  afterAll(async () => {
    await s3?.dispose();
    await removeScratch(dir);
  });

  async function upload(args: string[], env: Record<string, string> = {}) {
    return run(process.execPath, ['scripts/cli.ts', 'upload', ...args], {
      env: {
        PATH: process.env.PATH ?? '',
        S3_ENDPOINT: s3.endpoint,
        AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
        ...env,
      },
    }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
  }

  async function exists(key: string): Promise<boolean> {
    const client = s3Client(s3);
    try {
      await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
      return true;
    } catch {
      return false;
    } finally {
      client.destroy();
    }
  }

  it('uploads every file with a progress bar, and the manifest', async () => {
    const r = await upload(['--model', modelDir, '--to', `s3://${s3.bucket}/tiny/v1`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^uploaded 3 files .* to s3:\/\/models\/tiny\/v1; manifest.json last\n$/);
    expect(r.stderr).toMatch(/\[#{30}\] 100\.0%/);
    const manifest = JSON.parse(await readFile(join(modelDir, 'manifest.json'), 'utf8')) as {
      files: { path: string }[];
    };
    for (const f of manifest.files) expect(await exists(`tiny/v1/${f.path}`)).toBe(true);
    const client = s3Client(s3);
    const res = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'tiny/v1/manifest.json' }));
    expect(Buffer.from(await res.Body!.transformToByteArray())).toEqual(
      await readFile(join(modelDir, 'manifest.json')),
    );
    client.destroy();
  });

  it('never uploads the manifest of a folder whose files do not match it', async () => {
    const broken = join(dir, 'broken');
    await cp(modelDir, broken, { recursive: true, dereference: true });
    const config = await readFile(join(broken, 'config.json'), 'utf8');
    await chmod(join(broken, 'config.json'), 0o644); // copied from a read-only fixture
    await writeFile(join(broken, 'config.json'), config.replace('"silu"', '"SILU"'));
    const r = await upload(['--model', broken, '--to', `s3://${s3.bucket}/broken/v1`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('config.json');
    expect(r.stderr).toContain('SHA-256');
    expect(await exists('broken/v1/manifest.json')).toBe(false);
  });

  it('explains bad arguments and refused credentials', async () => {
    const noTarget = await upload(['--model', modelDir]);
    expect(noTarget.code).toBe(2);
    expect(noTarget.stderr).toContain('missing --to s3://bucket/prefix');
    const notS3 = await upload(['--model', modelDir, '--to', 'https://example.com/x']);
    expect(notS3.code).toBe(2);
    expect(notS3.stderr).toContain('not an s3:// URI');
    const noModel = await upload(['--model', join(dir, 'nope'), '--to', `s3://${s3.bucket}/x`]);
    expect(noModel.code).toBe(1);
    expect(noModel.stderr).toContain('manifest.json not found');
    const denied = await upload(['--model', modelDir, '--to', `s3://${s3.bucket}/denied`], {
      AWS_ACCESS_KEY_ID: 'NOT-A-KEY-789',
    });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('refused the credentials');
    expect(denied.stderr).not.toContain('NOT-A-KEY-789');
  });
});
