// Puts the model the stack serves into the local bucket, once. The object prefix is named by a
// fingerprint of what the model is made from (the demo's recipe, or the checkpoint's files) and
// of the code that converts it, so a second run finds it there (manifest.json is uploaded last,
// so its presence means a complete upload) and a changed source or converter makes a new one.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { convertCheckpoint } from '../../../gpu-function/src/convert/convert.ts';
import { DEFAULT_BLOCK_SIZE } from '../../../gpu-function/src/convert/quantize.ts';
import { objectKey, type S3Location } from '../../../gpu-function/src/weights/s3-uri.ts';
import { uploadModel } from '../../../gpu-function/src/weights/upload-model.ts';
import { createProgress } from '../progress.ts';
import { REPO_ROOT } from '../tokenizer-asset.ts';
import { buildDemoModel, DEMO_LABEL, DEMO_MODEL } from './demo-model.ts';
import type { StackLog } from './log.ts';
import { DEMO_PREFIX, pruneOldDemos } from './prune-demos.ts';

export interface ServedModel {
  /** The demo model, a checkpoint converted here, or a converted model given as MODEL_URI. */
  kind: 'demo' | 'checkpoint' | 'converted';
  /** What it is, for the banner. */
  label: string;
  /** MODEL_URI of the GPU function. */
  uri: string;
  /** Already in the bucket from an earlier run. */
  reused: boolean;
}

/** WEIGHTS: the form a model converted here takes. */
export type WeightsForm = 'float32' | 'int8' | 'int4';

/** Checks the WEIGHTS setting (unset: undefined, which converts to float32). */
export function parseWeights(text: string | undefined): WeightsForm | undefined {
  if (text === undefined) return undefined;
  if (text === 'float32' || text === 'int8' || text === 'int4') return text;
  throw new Error(`WEIGHTS must be float32, int8 or int4 (got '${text}')`);
}

const describeForm = (weights: WeightsForm) =>
  weights === 'float32' ? 'float32' : `${weights}, blocks of ${DEFAULT_BLOCK_SIZE}`;

/** The code that turns a checkpoint into the served folder; a change in it rebuilds the model. */
const BUILDER_DIRS = ['gpu-function/src/model', 'gpu-function/src/convert', 'gpu-function/src/checkpoint'];

function builderFingerprint(hash: ReturnType<typeof createHash>): void {
  for (const dir of BUILDER_DIRS) {
    const files = readdirSync(path.join(REPO_ROOT, dir), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .sort();
    for (const f of files) hash.update(`${dir}/${f}\0`).update(readFileSync(path.join(REPO_ROOT, dir, f)));
  }
}

/** config.json and the weight files' names, sizes and modification times (hashing 28 GB would take minutes). */
function checkpointFingerprint(hash: ReturnType<typeof createHash>, dir: string): void {
  hash.update(readFileSync(path.join(dir, 'config.json')));
  for (const f of readdirSync(dir).sort()) {
    if (!/\.(safetensors|bin)$/.test(f)) continue;
    const s = statSync(path.join(dir, f));
    hash.update(`${f}\0${s.size}\0${s.mtimeMs}\0`);
  }
}

export function prefixFor(checkpoint: string | undefined, weights: WeightsForm): string {
  const hash = createHash('sha256');
  builderFingerprint(hash);
  // float32 adds nothing: WEIGHTS unset and WEIGHTS=float32 name the same model.
  if (weights !== 'float32') hash.update(`weights:${weights}\0`);
  if (checkpoint) checkpointFingerprint(hash, checkpoint);
  else hash.update(JSON.stringify(DEMO_MODEL));
  const tag = hash.digest('hex').slice(0, 12);
  if (!checkpoint) return `${DEMO_PREFIX}${tag}`;
  const name =
    path
      .basename(checkpoint)
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .slice(0, 60) || 'checkpoint';
  return `checkpoints/${name}-${tag}`;
}

async function inBucket(client: S3Client, location: S3Location): Promise<boolean> {
  try {
    await client.send(
      new HeadObjectCommand({ Bucket: location.bucket, Key: objectKey(location, 'manifest.json') }),
    );
    return true;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw err;
  }
}

export async function seedModel(o: {
  client: S3Client;
  bucket: string;
  /** A Hugging Face checkpoint folder; undefined serves the demo model. */
  checkpoint: string | undefined;
  /** The form of the converted weights. */
  weights: WeightsForm;
  /** Scratch space for the conversion; removed afterwards. */
  workDir: string;
  /** The GPU function's MODEL_CACHE_DIR (older demo models are removed from it). */
  cacheRoot: string;
  log: StackLog;
}): Promise<ServedModel> {
  const { log } = o;
  const checkpoint = o.checkpoint ? path.resolve(o.checkpoint) : undefined;
  if (checkpoint && !statSync(path.join(checkpoint, 'config.json'), { throwIfNoEntry: false })) {
    throw new Error(`MODEL_CHECKPOINT=${checkpoint} is not a checkpoint folder: it has no config.json`);
  }
  const location = { bucket: o.bucket, prefix: prefixFor(checkpoint, o.weights) };
  const form = o.weights === 'float32' ? '' : ` (${describeForm(o.weights)})`;
  const uri = `s3://${location.bucket}/${location.prefix}`;
  const served = (reused: boolean): ServedModel =>
    checkpoint
      ? { kind: 'checkpoint', label: `checkpoint ${checkpoint}${form}`, uri, reused }
      : { kind: 'demo', label: `${DEMO_LABEL}${form}`, uri, reused };

  if (await inBucket(o.client, location)) {
    log.line('model', `already in the bucket: ${uri}`);
    return served(true);
  }
  const work = path.join(o.workDir, `build-${process.pid}-${Date.now()}`);
  await mkdir(work, { recursive: true });
  try {
    let modelDir: string;
    const t0 = performance.now();
    if (checkpoint) {
      log.line(
        'model',
        `converting ${checkpoint} (${describeForm(o.weights)}, for the CPU); a 7B model takes a while`,
      );
      modelDir = path.join(work, 'model');
      const bar = log.interactive ? createProgress('[model] convert', { unit: 'bytes' }) : null;
      let last = 0;
      await convertCheckpoint({
        checkpointDir: checkpoint,
        outDir: modelDir,
        dtype: 'float32',
        ...(o.weights === 'float32' ? {} : { quantize: { dtype: o.weights } }),
        onProgress: (p) => {
          if (p.stage !== 'weights' || !bar) return;
          bar.setTotal(p.total);
          bar.tick(p.done - last);
          last = p.done;
        },
      });
      bar?.done('converted');
    } else {
      log.line('model', 'making the demo model (random weights, first run only)');
      const demo = await buildDemoModel(work, o.weights === 'float32' ? undefined : o.weights);
      modelDir = demo.dir;
      log.line('model', `${(demo.parameters / 1e6).toFixed(1)}M parameters`);
    }
    log.line('model', `built in ${((performance.now() - t0) / 1000).toFixed(1)} s; uploading to ${uri}`);
    const bar = log.interactive ? createProgress('[model] upload', { unit: 'bytes' }) : null;
    let last = 0;
    const t1 = performance.now();
    const uploaded = await uploadModel({
      client: o.client,
      location,
      modelDir,
      onProgress: (p) => {
        if (!bar) return;
        bar.setTotal(p.totalBytes);
        bar.tick(p.uploadedBytes - last);
        last = p.uploadedBytes;
      },
    });
    bar?.done('uploaded');
    log.line(
      'model',
      `uploaded ${uploaded.files} files (${(uploaded.bytes / 1e6).toFixed(0)} MB) in ${((performance.now() - t1) / 1000).toFixed(1)} s`,
    );
    if (!checkpoint) {
      await pruneOldDemos({
        client: o.client,
        bucket: o.bucket,
        keep: location.prefix,
        cacheRoot: o.cacheRoot,
        log,
      });
    }
    return served(false);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
