// Converted model folders for the engine tests, made by the real converter from the read-only
// fixtures into a temp folder under .cache/ (config.json, weights, manifest; graphs are built on open).

import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readSafetensorsIndex } from '../../../gpu-function/src/checkpoint/safetensors.ts';
import { convertCheckpoint } from '../../../gpu-function/src/convert/convert.ts';
import type { GenerationStream } from '../../../gpu-function/src/engine/engine.ts';

export const FIXTURES = path.resolve(process.cwd(), '../shared/fixtures/model');
export type FixtureName = 'tiny-seed1234' | 'h128-seed4321';

export interface Golden {
  greedy: { prompt_ids: number[]; new_tokens: number[] };
  config: Record<string, unknown>;
}

export async function readGolden(fixture: FixtureName): Promise<Golden> {
  return JSON.parse(await readFile(path.join(FIXTURES, fixture, 'golden.json'), 'utf8')) as Golden;
}

/**
 * Converts a fixture; returns `<temp>/model`. float16 uses the fixture's float16 file as is
 * (float16 compute). `patch` edits the float32 weights first, in a private copy of the
 * checkpoint (to force a behaviour). Remove it all with removeDir.
 */
export async function fixtureModelDir(
  fixture: FixtureName,
  dtype: 'float32' | 'float16',
  patch?: (name: string, values: Float32Array) => void,
): Promise<string> {
  const root = path.resolve('.cache/engine-tests');
  await mkdir(root, { recursive: true });
  const tmp = await mkdtemp(path.join(root, `${fixture}-${dtype}-`));
  let checkpointDir = path.join(FIXTURES, fixture);
  if (patch) {
    const patched = path.join(tmp, 'checkpoint');
    await mkdir(patched);
    await copyFile(path.join(checkpointDir, 'config.json'), path.join(patched, 'config.json'));
    await writePatched(
      path.join(checkpointDir, 'model.safetensors'),
      path.join(patched, 'model.safetensors'),
      patch,
    );
    checkpointDir = patched;
  }
  const outDir = path.join(tmp, 'model');
  await convertCheckpoint({
    checkpointDir,
    outDir,
    dtype,
    ...(dtype === 'float16' ? { variant: 'fp16' } : {}),
  });
  return outDir;
}

async function writePatched(source: string, target: string, patch: (name: string, v: Float32Array) => void) {
  const bytes = await readFile(source);
  for (const t of await readSafetensorsIndex(source)) {
    if (t.dtype !== 'F32') throw new Error('only float32 weights can be patched');
    const start = bytes.byteOffset + t.offset;
    const copy = new Float32Array(bytes.buffer.slice(start, start + t.byteLength));
    patch(t.name, copy);
    bytes.set(new Uint8Array(copy.buffer), t.offset);
  }
  await writeFile(target, bytes);
}

/** Removes a folder made by fixtureModelDir (its temp parent). */
export async function removeDir(modelDir: string | undefined): Promise<void> {
  if (modelDir) await rm(path.dirname(modelDir), { recursive: true, force: true });
}

/**
 * The tiny fixture patched to always predict end-of-text (id 3): a final layer norm with γ = 0
 * makes every hidden state equal β, and an LM-head row for id 3 along β wins.
 */
export function eosAlwaysModelDir(): Promise<string> {
  let beta: Float32Array | undefined;
  return fixtureModelDir('tiny-seed1234', 'float32', (name, values) => {
    if (name === 'transformer.final_layer_norm.weight') values.fill(0);
    if (name === 'transformer.final_layer_norm.bias') beta = values.slice();
    if (name === 'embed_out.weight' && beta)
      values.set(
        beta.map((x) => x * 1000),
        3 * beta.length,
      );
  });
}

/** Every id a stream yields, in order (one-sample requests). */
export async function collectIds(stream: GenerationStream): Promise<number[]> {
  const ids: number[] = [];
  for await (const chunk of stream) ids.push(...chunk.ids);
  return ids;
}
