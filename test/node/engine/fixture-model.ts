// Converted model folders for the engine tests, made from the read-only fixtures: the weight
// file is hard-linked (or copied) into a temp folder under .cache/ and model.onnx points into it.

import { copyFile, link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readSafetensorsIndex } from '../../../gpu-function/src/checkpoint/safetensors.ts';
import { parseModelConfig } from '../../../gpu-function/src/model/config.ts';
import type { WeightLocation } from '../../../gpu-function/src/model/decoder.ts';
import { buildForwardModel } from '../../../gpu-function/src/model/forward-model.ts';
import {
  buildGenerationModel,
  type GenerationModelOptions,
} from '../../../gpu-function/src/model/generation-graph.ts';
import { encodeModel } from '../../../gpu-function/src/model/onnx/index.ts';

export const FIXTURES = path.resolve(process.cwd(), '../shared/fixtures/model');
export type FixtureName = 'tiny-seed1234' | 'h128-seed4321';

const WEIGHT_DTYPE = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;

export interface Golden {
  greedy: { prompt_ids: number[]; new_tokens: number[] };
  config: Record<string, unknown>;
}

export async function readGolden(fixture: FixtureName): Promise<Golden> {
  return JSON.parse(await readFile(path.join(FIXTURES, fixture, 'golden.json'), 'utf8')) as Golden;
}

/** A folder with config.json, model.safetensors, model.onnx and forward.onnx; remove it with removeDir. */
export async function fixtureModelDir(
  fixture: FixtureName,
  dtype: 'float32' | 'float16',
  options: GenerationModelOptions = {},
  /** Edits float32 weights in a private copy of the weight file (to force behaviour). */
  patch?: (name: string, values: Float32Array) => void,
): Promise<string> {
  const root = path.resolve('.cache/engine-tests');
  await mkdir(root, { recursive: true });
  const dir = await mkdtemp(path.join(root, `${fixture}-${dtype}-`));
  const src = path.join(FIXTURES, fixture);
  const weightsFile = path.join(dir, 'model.safetensors');
  const source = path.join(src, dtype === 'float32' ? 'model.safetensors' : 'model.fp16.safetensors');
  if (patch) await writePatched(source, weightsFile, patch);
  else await link(source, weightsFile).catch(() => copyFile(source, weightsFile));
  await copyFile(path.join(src, 'config.json'), path.join(dir, 'config.json'));
  const config = parseModelConfig(JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')));
  const weights = new Map<string, WeightLocation>();
  for (const t of await readSafetensorsIndex(weightsFile)) {
    weights.set(t.name, {
      location: 'model.safetensors',
      offset: t.offset,
      length: t.byteLength,
      dtype: WEIGHT_DTYPE[t.dtype],
    });
  }
  const graphOptions = { dtype, ...options };
  const generation = buildGenerationModel(config, weights, graphOptions);
  await writeFile(path.join(dir, 'model.onnx'), encodeModel(generation));
  await writeFile(
    path.join(dir, 'forward.onnx'),
    encodeModel(buildForwardModel(config, weights, graphOptions)),
  );
  return dir;
}

async function writePatched(source: string, target: string, patch: (name: string, v: Float32Array) => void) {
  const bytes = await readFile(source);
  for (const t of await readSafetensorsIndex(source)) {
    if (t.dtype !== 'F32') throw new Error('only float32 weights can be patched');
    const copy = new Float32Array(
      bytes.buffer.slice(bytes.byteOffset + t.offset, bytes.byteOffset + t.offset + t.byteLength),
    );
    patch(t.name, copy);
    bytes.set(new Uint8Array(copy.buffer), t.offset);
  }
  await writeFile(target, bytes);
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true });
}
