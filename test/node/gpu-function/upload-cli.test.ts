// `npm run -s cli -- upload`: the real command against s3rver on loopback.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadModel } from '../../../gpu-function/src/weights/upload-model.ts';
import {
  convertTinyModel,
  HAVE_FIXTURES,
  removeScratch,
  s3Client,
  scratchDir,
  uploadTo,
} from './helpers/model.ts';
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

  /** The manifest stored under `prefix`, or null when there is none. */
  async function manifestAt(prefix: string): Promise<Buffer | null> {
    const client = s3Client(s3);
    try {
      const res = await client.send(
        new GetObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/manifest.json` }),
      );
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch {
      return null;
    } finally {
      client.destroy();
    }
  }

  /** Updates the manifest entry of `file` to its current size and SHA-256. */
  async function rewriteManifestHash(folder: string, file: string): Promise<void> {
    const path = join(folder, 'manifest.json');
    await chmod(path, 0o644);
    const manifest = JSON.parse(await readFile(path, 'utf8')) as {
      files: { path: string; size: number; sha256: string }[];
    };
    const bytes = await readFile(join(folder, file));
    const entry = manifest.files.find((f) => f.path === file)!;
    entry.size = bytes.length;
    entry.sha256 = createHash('sha256').update(bytes).digest('hex');
    await writeFile(path, JSON.stringify(manifest, null, 2));
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

  it('refuses a prefix that already holds a model, leaving it as it is', async () => {
    const target = `s3://${s3.bucket}/tiny/v1`; // uploaded by the first test
    const before = await manifestAt('tiny/v1');
    const r = await upload(['--model', modelDir, '--to', target]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/manifest\.json exists: .* new prefix .* --replace/);
    expect(await manifestAt('tiny/v1')).toEqual(before);
  });

  it('with --replace, keeps the old manifest readable until the new one is written', async () => {
    await uploadTo(s3, modelDir, 'live/v1');
    const old = await manifestAt('live/v1');
    // A different conversion of the same model: other hashes, so another manifest.
    const other = join(dir, 'other');
    await cp(modelDir, other, { recursive: true, dereference: true });
    await chmod(join(other, 'config.json'), 0o644);
    const config = JSON.parse(await readFile(join(other, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(other, 'config.json'), JSON.stringify({ ...config, note: 'v2' }));
    await rewriteManifestHash(other, 'config.json');

    const client = s3Client(s3);
    const seen: (Buffer | null)[] = [];
    try {
      await uploadModel({
        client,
        location: { bucket: s3.bucket, prefix: 'live/v1' },
        modelDir: other,
        replace: true,
        // While files go up, a loader starting now must still find a manifest.
        onProgress: () => void manifestAt('live/v1').then((m) => seen.push(m)),
      });
    } finally {
      client.destroy();
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((m) => m !== null)).toBe(true);
    expect(await manifestAt('live/v1')).toEqual(await readFile(join(other, 'manifest.json')));
    expect(await manifestAt('live/v1')).not.toEqual(old);
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
