// writeRandomCheckpoint: a valid checkpoint in the real layout, the same bytes for the same
// seed, the intended distributions, and dtype variants drawn from the same numbers.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../../gpu-function/src/checkpoint/open.ts';
import { writeRandomCheckpoint } from '../../../gpu-function/src/checkpoint/random.ts';
import { convertCheckpoint } from '../../../gpu-function/src/convert/convert.ts';
import {
  float32BitsToBfloat16Bits,
  float32BitsToFloat16Bits,
} from '../../../gpu-function/src/convert/dtype.ts';
import { writeGraph } from '../../../gpu-function/src/model-folder/graphs.ts';
import { useTempRoot } from './helpers.ts';

// Head size 64, rotary 16; the embeddings (16384 x 128 = 2M values) span two generation chunks.
const SMALL = { vocab_size: 16384, hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 2 };

async function tensorValues(dir: string, name: string): Promise<Float32Array> {
  const ckpt = await openCheckpoint(dir);
  const ref = ckpt.tensors.get(name)!;
  const bytes = (await readFile(ref.file)).subarray(ref.offset, ref.offset + ref.byteLength);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function stats(v: Float32Array): { mean: number; std: number } {
  let s = 0;
  let s2 = 0;
  for (const x of v) {
    s += x;
    s2 += x * x;
  }
  const mean = s / v.length;
  return { mean, std: Math.sqrt(s2 / v.length - mean * mean) };
}

describe('writeRandomCheckpoint', () => {
  const tempRoot = useTempRoot();

  it('writes a checkpoint openCheckpoint accepts, byte-identical for the same seed only', async () => {
    const root = await tempRoot();
    const a = await writeRandomCheckpoint({ dir: join(root, 'a'), config: SMALL, seed: 1 });
    await writeRandomCheckpoint({ dir: join(root, 'b'), config: SMALL, seed: 1 });
    await writeRandomCheckpoint({ dir: join(root, 'c'), config: SMALL, seed: 2 });
    const ckpt = await openCheckpoint(a.dir);
    expect(ckpt.config.hiddenSize).toBe(128);
    expect(ckpt.config.intermediateSize).toBe(512);
    const counted = [...ckpt.tensors.values()].reduce((n, t) => n + t.byteLength / 4, 0);
    expect(a.parameters).toBe(counted);
    expect(a.weightsBytes).toBe(counted * 4);
    const file = (d: string) => readFile(join(root, d, 'model.safetensors'));
    expect((await file('a')).equals(await file('b'))).toBe(true);
    expect((await file('a')).equals(await file('c'))).toBe(false);
    expect(JSON.parse(await readFile(join(root, 'a', 'config.json'), 'utf8'))).toMatchObject({
      ...SMALL,
      architectures: ['JapaneseStableLMAlphaForCausalLM'],
      torch_dtype: 'float32',
    });
  });

  it('draws N(0, 0.02) matrices, 1 + N(0, 0.1) layer-norm weights, N(0, 0.1) biases; chunks continue the stream', async () => {
    const dir = join(await tempRoot(), 'stats');
    await writeRandomCheckpoint({ dir, config: SMALL, seed: 3 });
    const embed = await tensorValues(dir, 'transformer.embed_in.weight');
    const e = stats(embed);
    expect(Math.abs(e.mean)).toBeLessThan(1e-4);
    expect(e.std).toBeCloseTo(0.02, 3);
    // The second 1M-value chunk is new numbers, not a repeat of the first.
    const half = embed.length / 2;
    expect(embed.subarray(0, 1000)).not.toEqual(embed.subarray(half, half + 1000));
    const ln = stats(await tensorValues(dir, 'transformer.layers.1.post_attention_layernorm.weight'));
    expect(ln.mean).toBeGreaterThan(0.97);
    expect(ln.mean).toBeLessThan(1.03);
    const bias = stats(await tensorValues(dir, 'transformer.final_layer_norm.bias'));
    expect(bias.std).toBeGreaterThan(0.08);
    expect(bias.std).toBeLessThan(0.12);
    // Different tensors get different streams.
    const out = await tensorValues(dir, 'embed_out.weight');
    expect(out.subarray(0, 100)).not.toEqual(embed.subarray(0, 100));
  });

  it('F16 and BF16 files hold the F32 draws rounded to nearest even', async () => {
    const root = await tempRoot();
    const config = { vocab_size: 256, hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 1 };
    const bytes = async (dtype: 'F32' | 'F16' | 'BF16') => {
      const dir = join(root, dtype);
      await writeRandomCheckpoint({ dir, config, seed: 9, dtype });
      const ckpt = await openCheckpoint(dir);
      expect(ckpt.rawConfig.torch_dtype).toBe({ F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype]);
      const ref = ckpt.tensors.get('transformer.layers.0.mlp.out_proj.weight')!;
      expect(ref.dtype).toBe(dtype);
      const b = (await readFile(ref.file)).subarray(ref.offset, ref.offset + ref.byteLength);
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    };
    const f32 = new Uint32Array(await bytes('F32'));
    expect([...new Uint16Array(await bytes('F16'))]).toEqual([...f32].map(float32BitsToFloat16Bits));
    expect([...new Uint16Array(await bytes('BF16'))]).toEqual([...f32].map(float32BitsToBfloat16Bits));
  });

  it('converts and runs: the forward graph gives finite logits of a sensible spread', async () => {
    const root = await tempRoot();
    const src = await writeRandomCheckpoint({
      dir: join(root, 'src'),
      config: SMALL,
      seed: 5,
      dtype: 'BF16',
    });
    const { manifest, outDir } = await convertCheckpoint({
      checkpointDir: src.dir,
      outDir: join(root, 'out'),
    });
    const session = await ort.InferenceSession.create(await writeGraph(outDir, 'forward'), {
      intraOpNumThreads: 1,
    });
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from([3n, 100n, 16383n]), [1, 3]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from([0n, 1n, 2n]), [1, 3]),
    };
    for (let l = 0; l < 2; l++) {
      for (const kind of ['key', 'value']) {
        feeds[`past_key_values.${l}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, 2, 0, 64]);
      }
    }
    const logits = (await session.run(feeds, ['logits'])).logits!.data as Float32Array;
    await session.release();
    expect(logits.length).toBe(3 * 16384);
    expect(logits.every(Number.isFinite)).toBe(true);
    const { std } = stats(logits);
    expect(std).toBeGreaterThan(0.05);
    expect(std).toBeLessThan(5);
    expect(manifest.source.dtypes).toEqual(['BF16']);
  });
});
