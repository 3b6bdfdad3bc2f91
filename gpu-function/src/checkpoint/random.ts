// Writes a checkpoint folder (config.json + model.safetensors) with deterministic random
// weights in the real layout: N(0, 0.02) matrices and embeddings, layer-norm weights
// 1 + N(0, 0.1), biases N(0, 0.1), as the test fixtures were drawn. Each tensor has its own
// random stream (seed, tensor index), and the data is generated and written in chunks, so a
// model of billions of parameters needs only a few MiB of memory.

import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convertElements, float32BitsToBfloat16Bits } from '../convert/dtype.ts';
import { expectedTensors, type ModelConfig, parseModelConfig } from '../model/config.ts';
import { fillNormal, Xoshiro128 } from './normal-random.ts';
import { safetensorsLayout } from './safetensors-writer.ts';
import { DTYPE_BYTES, elementCount, type TensorDtype } from './tensor-ref.ts';

/** config.json fields of the 7B model; callers override the sizes. */
export const BASE_CONFIG: Readonly<Record<string, unknown>> = {
  architectures: ['JapaneseStableLMAlphaForCausalLM'],
  model_type: 'japanese-stablelm-alpha',
  vocab_size: 65536,
  hidden_size: 4096,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  hidden_act: 'silu',
  rotary_pct: 0.25,
  rotary_emb_base: 10000,
  rotary_scale_base: 512,
  max_position_embeddings: 2048,
  layer_norm_eps: 1e-5,
  use_parallel_residual: true,
  tie_word_embeddings: false,
  initializer_range: 0.02,
  use_cache: true,
  bos_token_id: 3,
  eos_token_id: 3,
  torch_dtype: 'float32',
};

const TORCH_DTYPE: Record<TensorDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };
const CHUNK_ELEMENTS = 1 << 20;

export interface RandomCheckpointOptions {
  dir: string;
  /** config.json fields overriding BASE_CONFIG (e.g. hidden_size, num_hidden_layers). */
  config?: Record<string, unknown>;
  seed?: number;
  dtype?: TensorDtype;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface RandomCheckpoint {
  dir: string;
  config: ModelConfig;
  parameters: number;
  weightsBytes: number;
}

/** The normal distribution a random checkpoint draws the tensor `name` from. */
export function distributionOf(name: string): { mean: number; std: number } {
  if (name.endsWith('layernorm.weight') || name.endsWith('layer_norm.weight')) return { mean: 1, std: 0.1 };
  if (name.endsWith('.bias')) return { mean: 0, std: 0.1 };
  return { mean: 0, std: 0.02 };
}

function encodeChunk(values: Float32Array, dtype: TensorDtype, out: Uint8Array): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (dtype === 'F16') {
    const src = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    return out.subarray(0, convertElements('F32', 'float16', src, out, values.length));
  }
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const half = new Uint16Array(out.buffer, out.byteOffset, values.length);
  for (let i = 0; i < bits.length; i++) half[i] = float32BitsToBfloat16Bits(bits[i]!);
  return out.subarray(0, values.length * 2);
}

export async function writeRandomCheckpoint(options: RandomCheckpointOptions): Promise<RandomCheckpoint> {
  const dtype = options.dtype ?? 'F32';
  const seed = options.seed ?? 0;
  const raw = { ...BASE_CONFIG, ...options.config, torch_dtype: TORCH_DTYPE[dtype] };
  const config = parseModelConfig(raw);
  const entries = [...expectedTensors(config)].map(([name, shape]) => ({ name, dtype, shape }));
  const layout = safetensorsLayout(entries);
  const weightsBytes = layout.fileSize - layout.header.length;

  await mkdir(options.dir, { recursive: true });
  await writeFile(join(options.dir, 'config.json'), `${JSON.stringify(raw, null, 2)}\n`);
  const values = new Float32Array(CHUNK_ELEMENTS);
  const encoded = new Uint8Array(CHUNK_ELEMENTS * 2);
  const fh = await open(join(options.dir, 'model.safetensors'), 'w');
  let done = 0;
  try {
    await fh.write(layout.header, 0, layout.header.length, 0);
    for (const [index, entry] of entries.entries()) {
      const rng = new Xoshiro128(seed, index);
      const { mean, std } = distributionOf(entry.name);
      const total = elementCount(entry.shape);
      let position = layout.offsets[index]!;
      for (let start = 0; start < total; start += CHUNK_ELEMENTS) {
        const chunk = values.subarray(0, Math.min(CHUNK_ELEMENTS, total - start));
        fillNormal(rng, chunk, mean, std);
        const bytes = encodeChunk(chunk, dtype, encoded);
        await fh.write(bytes, 0, bytes.length, position);
        position += bytes.length;
        done += bytes.length;
        options.onProgress?.(done, weightsBytes);
      }
    }
  } finally {
    await fh.close();
  }
  const parameters = entries.reduce((a, e) => a + elementCount(e.shape), 0);
  return { dir: options.dir, config, parameters, weightsBytes: parameters * DTYPE_BYTES[dtype] };
}
