// Models the quantization accuracy tests compare against, all built from a fixture's float32
// weights with the production graph builder:
//   - the float32 model itself;
//   - the float32 model on the weights a quantized folder stands for (dequantized codes);
//   - "bound" models: every weight the converter quantizes moved by a full half step of its
//     block (±s/2, the most round-to-nearest can move it) in a random direction.
// With `int8ActivationsBlock` the float graph rounds every linear input to int8 per block as
// serving does (int8-activations.ts).

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Xoshiro128 } from '../../../gpu-function/src/checkpoint/normal-random.ts';
import { readSafetensorsIndex } from '../../../gpu-function/src/checkpoint/safetensors.ts';
import {
  type InMemoryTensor,
  writeSafetensorsFile,
} from '../../../gpu-function/src/checkpoint/safetensors-writer.ts';
import {
  float16BitsToFloat32Bits,
  float32BitsToFloat16Bits,
} from '../../../gpu-function/src/convert/dtype.ts';
import {
  dequantizeRows,
  isQuantizedTensor,
  type QuantScheme,
  qmax,
} from '../../../gpu-function/src/convert/quantize.ts';
import { type ModelConfig, parseModelConfig } from '../../../gpu-function/src/model/config.ts';
import type { WeightLocation } from '../../../gpu-function/src/model/decoder.ts';
import { buildForwardModel } from '../../../gpu-function/src/model/forward-model.ts';
import { encodeModel } from '../../../gpu-function/src/model/onnx/index.ts';
import { QUANTIZED_BITS } from '../../../gpu-function/src/model/quantized-linear.ts';
import type { Manifest } from '../../../gpu-function/src/model-folder/manifest.ts';
import { emulateInt8Activations } from './int8-activations.ts';

export const SCRATCH = path.resolve(process.cwd(), '.cache/test-models');

/** Session options of the serving engine on the CPU: prepacked weights (MatMulNBits needs them). */
export const SERVING_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
};

export async function fixtureTensors(fixtureDir: string): Promise<InMemoryTensor[]> {
  const file = path.join(fixtureDir, 'model.safetensors');
  const bytes = await readFile(file);
  return (await readSafetensorsIndex(file)).map((r) => ({
    name: r.name,
    dtype: r.dtype,
    shape: r.shape,
    // A copy: the caller may change it.
    data: new Uint8Array(bytes.subarray(r.offset, r.offset + r.byteLength)),
  }));
}

const floats = (t: InMemoryTensor) =>
  new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);

/** Rounds a float32 tensor to float16 and back, in place (the quantized folders' embedding). */
export function roundToHalf(t: InMemoryTensor): void {
  const bits = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
  for (let i = 0; i < bits.length; i++)
    bits[i] = float16BitsToFloat32Bits(float32BitsToFloat16Bits(bits[i]!));
}

/**
 * Moves every value of a [rows, cols] float32 tensor by ±s/2 of its block, s = max|w| / qmax as
 * the converter computes it, with random signs from `rng`.
 */
export function moveByHalfStep(t: InMemoryTensor, scheme: QuantScheme, rng: Xoshiro128): void {
  const [rows, cols] = t.shape as [number, number];
  const w = floats(t);
  const top = qmax(scheme.bits);
  for (let r = 0; r < rows; r++) {
    for (let start = 0; start < cols; start += scheme.blockSize) {
      const end = Math.min(cols, start + scheme.blockSize);
      let amax = 0;
      for (let c = start; c < end; c++) amax = Math.max(amax, Math.abs(w[r * cols + c]!));
      const half = Math.fround(amax / top) / 2;
      let bits = 0;
      for (let c = start; c < end; c++) {
        if ((c - start) % 32 === 0) bits = rng.next();
        w[r * cols + c] = w[r * cols + c]! + ((bits >>> ((c - start) % 32)) & 1 ? half : -half);
      }
    }
  }
}

/** The float32 tensors a quantized folder stands for: dequantized codes, the rest widened. */
export async function dequantizedTensors(dir: string, manifest: Manifest): Promise<InMemoryTensor[]> {
  const files = new Map<string, Buffer>();
  const file = async (name: string) => {
    let b = files.get(name);
    if (!b) {
      b = await readFile(path.join(dir, name));
      files.set(name, b);
    }
    return b;
  };
  const out: InMemoryTensor[] = [];
  for (const [name, t] of Object.entries(manifest.tensors)) {
    const bytes = (await file(t.location)).subarray(t.offset, t.offset + t.length);
    let values: Float32Array;
    if (t.dtype === 'int4' || t.dtype === 'int8') {
      const q = t.quantization!;
      const s = (await file(q.scales.location)).subarray(q.scales.offset, q.scales.offset + q.scales.length);
      const copy = new Uint8Array(s); // aligned for the typed view
      const scales =
        q.scales.dtype === 'float32' ? new Float32Array(copy.buffer) : new Uint16Array(copy.buffer);
      const [rows, cols] = t.shape as [number, number];
      const scheme = { bits: QUANTIZED_BITS[t.dtype], blockSize: q.blockSize, scaleDtype: q.scales.dtype };
      values = dequantizeRows(new Uint8Array(bytes), scales, rows, cols, scheme);
    } else if (t.dtype === 'float16') {
      const half = new Uint16Array(new Uint8Array(bytes).buffer);
      const bits = Uint32Array.from(half, float16BitsToFloat32Bits);
      values = new Float32Array(bits.buffer);
    } else values = new Float32Array(new Uint8Array(bytes).buffer);
    out.push({ name, dtype: 'F32', shape: t.shape, data: new Uint8Array(values.buffer) });
  }
  return out;
}

/** Tensor names a quantized conversion quantizes (the others it keeps as floats). */
export const quantizedNames = (tensors: InMemoryTensor[]) =>
  tensors.filter((t) => isQuantizedTensor(t.name)).map((t) => t.name);

export interface FloatModel {
  config: ModelConfig;
  run(ids: number[]): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** A forward graph over float32 `tensors` in a scratch folder, optionally with int8 activations. */
export async function openFloatModel(
  configJson: string,
  tensors: InMemoryTensor[],
  options: { int8ActivationsBlock?: number } = {},
): Promise<FloatModel> {
  await mkdir(SCRATCH, { recursive: true });
  const dir = await mkdtemp(path.join(SCRATCH, 'quant-ref-'));
  await writeSafetensorsFile(path.join(dir, 'model.safetensors'), tensors);
  const config = parseModelConfig(JSON.parse(configJson));
  const weights = new Map<string, WeightLocation>();
  for (const ref of await readSafetensorsIndex(path.join(dir, 'model.safetensors'))) {
    weights.set(ref.name, {
      location: 'model.safetensors',
      offset: ref.offset,
      length: ref.byteLength,
      dtype: 'float32',
    });
  }
  let model = buildForwardModel(config, weights, {});
  if (options.int8ActivationsBlock) model = emulateInt8Activations(model, options.int8ActivationsBlock);
  await writeFile(path.join(dir, 'forward.onnx'), encodeModel(model));
  const session = await ort.InferenceSession.create(path.join(dir, 'forward.onnx'), SERVING_OPTIONS);
  return {
    config,
    run: (ids) => runLogits(session, config, ids),
    async dispose() {
      await session.release();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Logits [T, V] of one sequence at positions 0..T-1, with no cache. */
export async function runLogits(session: ort.InferenceSession, config: ModelConfig, ids: number[]) {
  const T = ids.length;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, T]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(i))), [1, T]),
  };
  const empty = new Float32Array(0);
  for (let l = 0; l < config.numLayers; l++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_key_values.${l}.${kind}`] = new ort.Tensor('float32', empty, [
        1,
        config.numHeads,
        0,
        config.headSize,
      ]);
    }
  }
  const out = await session.run(feeds, ['logits']);
  return out.logits!.data as Float32Array;
}

/** A bound model's random directions: one stream per (seed, tensor). */
export function boundTensors(base: InMemoryTensor[], scheme: QuantScheme, seed: number): InMemoryTensor[] {
  return base.map((t, index) => {
    const copy = { ...t, data: new Uint8Array(t.data) };
    if (t.name === 'transformer.embed_in.weight') roundToHalf(copy);
    else if (isQuantizedTensor(t.name)) moveByHalfStep(copy, scheme, new Xoshiro128(seed, index));
    return copy;
  });
}
