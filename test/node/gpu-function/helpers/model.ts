// The tiny fixture checkpoint converted by the real converter, and uploaded to a LocalS3.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { convertCheckpoint } from '../../../../gpu-function/src/convert/convert.ts';
import { createS3Client } from '../../../../gpu-function/src/weights/s3-client.ts';
import { uploadModel } from '../../../../gpu-function/src/weights/upload-model.ts';
import { type LocalS3, S3RVER_CREDENTIALS } from './s3rver.ts';

export const TINY_FIXTURE = resolve(process.cwd(), '../shared/fixtures/model/tiny-seed1234');
export const HAVE_FIXTURES = existsSync(join(TINY_FIXTURE, 'model.safetensors'));

/** A fresh, git-ignored scratch folder for one test file. */
export async function scratchDir(name: string): Promise<string> {
  const root = resolve('.cache/gpu-function-tests');
  await mkdir(root, { recursive: true });
  return mkdtemp(join(root, `${name}-`));
}

/** Deletes a scratch folder (caches hold copies of the weights). */
export async function removeScratch(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true });
}

/** Converts the tiny fixture (float32) into `dir/model`; returns that folder. */
export async function convertTinyModel(dir: string): Promise<string> {
  const outDir = join(dir, 'model');
  await convertCheckpoint({ checkpointDir: TINY_FIXTURE, outDir });
  return outDir;
}

export function s3Client(s3: LocalS3) {
  return createS3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    ...S3RVER_CREDENTIALS,
    sessionToken: undefined,
  });
}

export async function uploadTo(s3: LocalS3, modelDir: string, prefix: string): Promise<void> {
  const client = s3Client(s3);
  try {
    await uploadModel({ client, location: { bucket: s3.bucket, prefix }, modelDir });
  } finally {
    client.destroy();
  }
}

/** The golden greedy continuation of the fixture (prompt ids and the ids that follow). */
export async function goldenGreedy(): Promise<{ prompt_ids: number[]; new_tokens: number[] }> {
  const g = JSON.parse(await readFile(join(TINY_FIXTURE, 'golden.json'), 'utf8')) as {
    greedy: { prompt_ids: number[]; new_tokens: number[] };
  };
  return g.greedy;
}

/** Settings that point the service at a LocalS3 (possibly through a proxy endpoint). */
export function storageEnv(endpoint: string, bucket: string, prefix: string, cacheDir: string) {
  return {
    MODEL_URI: `s3://${bucket}/${prefix}`,
    S3_ENDPOINT: endpoint,
    S3_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    MODEL_CACHE_DIR: cacheDir,
  };
}
