// Shared by the converter tests: fixture paths, temporary folders, and checkpoint folders in
// the other published forms (sharded safetensors, BF16, PyTorch .bin) made from a fixture.

import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll } from 'vitest';
import { readSafetensorsIndex } from '../../../gpu-function/src/checkpoint/safetensors.ts';
import {
  type InMemoryTensor,
  writeSafetensorsFile,
} from '../../../gpu-function/src/checkpoint/safetensors-writer.ts';
import type { TensorDtype } from '../../../gpu-function/src/checkpoint/tensor-ref.ts';
import { float32BitsToBfloat16Bits } from '../../../gpu-function/src/convert/dtype.ts';
import { writeGraph } from '../../../gpu-function/src/model-folder/graphs.ts';
import type { Manifest } from '../../../gpu-function/src/model-folder/manifest.ts';
import { type TorchSaveOptions, writeTorchStateDict } from './torch-save.ts';

export const FIXTURES = resolve(process.cwd(), '../shared/fixtures/model');
export const TINY = join(FIXTURES, 'tiny-seed1234');
export const H128 = join(FIXTURES, 'h128-seed4321');
export const hasFixtures =
  existsSync(join(TINY, 'model.safetensors')) && existsSync(join(H128, 'model.safetensors'));

/** A fresh folder under the OS temp dir, removed after the test file. */
export function useTempRoot(): () => Promise<string> {
  const roots: string[] = [];
  afterAll(async () => {
    await Promise.all(roots.map((r) => rm(r, { recursive: true, force: true })));
  });
  return async () => {
    const root = await mkdtemp(join(tmpdir(), 'jslm-convert-'));
    roots.push(root);
    return root;
  };
}

/** Every tensor of a safetensors file, read into memory (fixtures are small). */
export async function loadTensors(file: string): Promise<InMemoryTensor[]> {
  const bytes = await readFile(file);
  const refs = await readSafetensorsIndex(file);
  return refs.map((r) => ({
    name: r.name,
    dtype: r.dtype,
    shape: r.shape,
    data: bytes.subarray(r.offset, r.offset + r.byteLength),
  }));
}

export function toBfloat16(tensors: InMemoryTensor[]): InMemoryTensor[] {
  return tensors.map((t) => {
    if (t.dtype !== 'F32') throw new Error('toBfloat16 takes F32 tensors');
    const bits = new Uint32Array(
      t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength),
    );
    const out = new Uint16Array(bits.length);
    for (let i = 0; i < bits.length; i++) out[i] = float32BitsToBfloat16Bits(bits[i]!);
    return { ...t, dtype: 'BF16' as TensorDtype, data: new Uint8Array(out.buffer) };
  });
}

/** The two derived rotary buffers per layer that real checkpoints carry. */
export function rotaryBuffers(layers: number, halfRotary: number): InMemoryTensor[] {
  const out: InMemoryTensor[] = [];
  for (let l = 0; l < layers; l++) {
    for (const kind of ['inv_freq', 'scale']) {
      out.push({
        name: `transformer.layers.${l}.attention.rotary_emb.${kind}`,
        dtype: 'F32',
        shape: [halfRotary],
        data: new Uint8Array(halfRotary * 4).fill(0x3f),
      });
    }
  }
  return out;
}

/** Splits tensors into `n` shards of consecutive tensors. */
function shardsOf<T>(items: T[], n: number): T[][] {
  const per = Math.ceil(items.length / n);
  return Array.from({ length: n }, (_, i) => items.slice(i * per, (i + 1) * per));
}

async function writeIndex(path: string, shards: InMemoryTensor[][], names: string[]): Promise<void> {
  const weightMap: Record<string, string> = {};
  let total = 0;
  shards.forEach((shard, i) => {
    for (const t of shard) {
      weightMap[t.name] = names[i]!;
      total += t.data.byteLength;
    }
  });
  await writeFile(path, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
}

export interface MakeOptions {
  /** Config to write instead of the source's (already parsed JSON). */
  config?: Record<string, unknown>;
  shards?: number;
}

async function prepareDir(dir: string, configFrom: string, options: MakeOptions): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (options.config) await writeFile(join(dir, 'config.json'), JSON.stringify(options.config, null, 2));
  else await copyFile(join(configFrom, 'config.json'), join(dir, 'config.json'));
}

/** A safetensors checkpoint folder: model.safetensors, or shards with model.safetensors.index.json. */
export async function makeSafetensorsCheckpoint(
  dir: string,
  configFrom: string,
  tensors: InMemoryTensor[],
  options: MakeOptions = {},
): Promise<string> {
  await prepareDir(dir, configFrom, options);
  const n = options.shards ?? 1;
  if (n === 1) {
    await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors);
    return dir;
  }
  const shards = shardsOf(tensors, n);
  const names = shards.map(
    (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`,
  );
  for (const [i, shard] of shards.entries()) await writeSafetensorsFile(join(dir, names[i]!), shard);
  await writeIndex(join(dir, 'model.safetensors.index.json'), shards, names);
  return dir;
}

/** A PyTorch checkpoint folder: pytorch_model.bin, or shards with pytorch_model.bin.index.json. */
export async function makeTorchCheckpoint(
  dir: string,
  configFrom: string,
  tensors: InMemoryTensor[],
  options: MakeOptions & TorchSaveOptions = {},
): Promise<string> {
  await prepareDir(dir, configFrom, options);
  const n = options.shards ?? 1;
  if (n === 1) {
    await writeTorchStateDict(join(dir, 'pytorch_model.bin'), tensors, options);
    return dir;
  }
  const shards = shardsOf(tensors, n);
  const names = shards.map(
    (_, i) => `pytorch_model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.bin`,
  );
  for (const [i, shard] of shards.entries()) {
    await writeTorchStateDict(join(dir, names[i]!), shard, { container: 'dict', ...options });
  }
  await writeIndex(join(dir, 'pytorch_model.bin.index.json'), shards, names);
  return dir;
}

/** The bytes a manifest entry points at. */
export async function manifestTensorBytes(dir: string, manifest: Manifest, name: string): Promise<Buffer> {
  const t = manifest.tensors[name];
  if (!t) throw new Error(`manifest has no tensor '${name}'`);
  const fh = await open(join(dir, t.location), 'r');
  try {
    const buf = Buffer.alloc(t.length);
    await fh.read(buf, 0, t.length, t.offset);
    return buf;
  } finally {
    await fh.close();
  }
}

/** Names in a folder, for "nothing left behind" checks. */
export async function listDir(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

interface GoldenBlock {
  input_ids: number[];
  position_ids: number[];
  logits_at_ids: number[][];
}
export interface Golden {
  logit_ids: number[];
  sequences: Record<'len1' | 'len7' | 'len40', GoldenBlock>;
  fp16_weights_upcast: GoldenBlock;
  greedy: { prompt_ids: number[]; new_tokens: number[] };
}

export async function loadGolden(fixture: string): Promise<Golden> {
  return JSON.parse(await readFile(join(fixture, 'golden.json'), 'utf8')) as Golden;
}

/** Builds a converted folder's forward graph and runs it on one sequence; returns the max abs logit error vs the golden block. */
export async function forwardError(
  dir: string,
  manifest: Manifest,
  golden: Golden,
  block: GoldenBlock,
): Promise<number> {
  const { numLayers, numHeads, headSize } = manifest.config;
  const session = await ort.InferenceSession.create(await writeGraph(dir, 'forward'), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  try {
    const T = block.input_ids.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(block.input_ids.map(BigInt)), [1, T]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(block.position_ids.map(BigInt)), [1, T]),
    };
    const empty = manifest.computeDtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    for (let l = 0; l < numLayers; l++) {
      for (const kind of ['key', 'value']) {
        feeds[`past_key_values.${l}.${kind}`] = new ort.Tensor(manifest.computeDtype, empty, [
          1,
          numHeads,
          0,
          headSize,
        ]);
      }
    }
    const out = await session.run(feeds, ['logits']);
    const logits = out.logits!.data as Float32Array;
    const V = manifest.config.vocabSize;
    let max = 0;
    for (let t = 0; t < T; t++) {
      golden.logit_ids.forEach((id, j) => {
        max = Math.max(max, Math.abs(logits[t * V + id]! - block.logits_at_ids[t]![j]!));
      });
    }
    return max;
  } finally {
    await session.release();
  }
}
