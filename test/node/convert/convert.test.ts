// convertCheckpoint end to end: every source form gives weights whose bytes are the source's
// (converted as asked), a manifest that verifies, and forward graphs built from it that match the goldens.

import { copyFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { InMemoryTensor } from '../../../gpu-function/src/checkpoint/safetensors-writer.ts';
import { convertCheckpoint } from '../../../gpu-function/src/convert/convert.ts';
import { float16BitsToFloat32Bits } from '../../../gpu-function/src/convert/dtype.ts';
import { GenerationEngine } from '../../../gpu-function/src/engine/engine.ts';
import { expectedTensors } from '../../../gpu-function/src/model/config.ts';
import { type Manifest, verifyManifest } from '../../../gpu-function/src/model-folder/manifest.ts';
import {
  forwardError,
  H128,
  hasFixtures,
  listDir,
  loadGolden,
  loadTensors,
  makeSafetensorsCheckpoint,
  makeTorchCheckpoint,
  manifestTensorBytes,
  rotaryBuffers,
  TINY,
  toBfloat16,
  useTempRoot,
} from './helpers.ts';

/** Widens float16 or bfloat16 tensor bytes to float32 exactly. */
function widen(t: InMemoryTensor): Buffer {
  const src = new Uint16Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    out[i] = t.dtype === 'BF16' ? src[i]! << 16 : float16BitsToFloat32Bits(src[i]!);
  }
  return Buffer.from(out.buffer);
}

async function expectWeights(
  dir: string,
  manifest: Manifest,
  expected: Map<string, Uint8Array>,
): Promise<void> {
  expect(Object.keys(manifest.tensors)).toEqual([...expected.keys()]);
  for (const [name, bytes] of expected) {
    const got = await manifestTensorBytes(dir, manifest, name);
    expect(Buffer.compare(got, Buffer.from(bytes)), name).toBe(0);
  }
}

const byName = (tensors: InMemoryTensor[], map: (t: InMemoryTensor) => Uint8Array = (t) => t.data) =>
  new Map(tensors.map((t) => [t.name, map(t)]));

describe.skipIf(!hasFixtures)('convertCheckpoint', () => {
  const tempRoot = useTempRoot();
  let root: string;
  let tinyF32: InMemoryTensor[];
  let tinyF16: InMemoryTensor[];
  let h128F32: InMemoryTensor[];

  beforeAll(async () => {
    root = await tempRoot();
    tinyF32 = await loadTensors(join(TINY, 'model.safetensors'));
    tinyF16 = await loadTensors(join(TINY, 'model.fp16.safetensors'));
    h128F32 = await loadTensors(join(H128, 'model.safetensors'));
  });

  it('float32 safetensors: uses the file as it is, manifest verifies, its forward graph matches golden len7 within 1e-5', async () => {
    const out = join(root, 'tiny-f32');
    const stages = new Set<string>();
    let lastDone = 0;
    const result = await convertCheckpoint({
      checkpointDir: TINY,
      outDir: out,
      dtype: 'float32',
      onProgress: (p) => {
        stages.add(p.stage);
        if (p.stage === 'weights') {
          expect(p.done).toBeGreaterThanOrEqual(lastDone);
          lastDone = p.done;
        }
      },
    });
    expect(['linked', 'copied']).toContain(result.weights);
    expect([...stages]).toEqual(['weights', 'done']);
    expect(await listDir(out)).toEqual(['config.json', 'manifest.json', 'model.safetensors']);
    expect(await readFile(join(out, 'config.json'))).toEqual(await readFile(join(TINY, 'config.json')));

    const manifest = await verifyManifest(out);
    expect(manifest).toEqual(result.manifest);
    expect(manifest.dtype).toBe('float32');
    expect(manifest.computeDtype).toBe('float32');
    // A folder holds weights, config and manifest only: graphs are built when it is opened.
    expect(manifest.graphs).toBeUndefined();
    expect(manifest.source).toEqual({ format: 'safetensors', dtypes: ['F32'], files: ['model.safetensors'] });
    expect(manifest.files.map((f) => f.path)).toEqual(['config.json', 'model.safetensors']);
    const golden = JSON.parse(await readFile(join(TINY, 'golden.json'), 'utf8')) as {
      weights: Record<string, string>;
    };
    expect(manifest.files[1]!.sha256).toBe(golden.weights['model.safetensors']);
    for (const f of manifest.files) expect((await stat(join(out, f.path))).size).toBe(f.size);
    await expectWeights(out, manifest, byName(tinyF32));
    // Initializers point straight into the safetensors data, past its header.
    expect(manifest.tensors['transformer.embed_in.weight']!.location).toBe('model.safetensors');
    expect(manifest.tensors['transformer.embed_in.weight']!.offset).toBeGreaterThan(8);

    const g = await loadGolden(TINY);
    expect(await forwardError(out, manifest, g, g.sequences.len7)).toBeLessThan(1e-5);

    // The generation graph serves from the same folder: the greedy continuation is exact.
    const engine = await GenerationEngine.open(out);
    try {
      const stream = engine.generate({ promptIds: g.greedy.prompt_ids, maxNewTokens: 20, temperature: 0 });
      const ids: number[] = [];
      for await (const chunk of stream) ids.push(...chunk.ids);
      expect(ids).toEqual(g.greedy.new_tokens);
    } finally {
      await engine.close();
    }
  });

  it('float32 -> float16: weights.bin equals the fixture float16 file bit for bit (round to nearest even)', async () => {
    const out = join(root, 'tiny-to-f16');
    const result = await convertCheckpoint({ checkpointDir: TINY, outDir: out, dtype: 'float16' });
    expect(result.weights).toBe('converted');
    expect(await listDir(out)).toEqual(['config.json', 'manifest.json', 'weights.bin']);
    const manifest = await verifyManifest(out);
    expect(manifest.dtype).toBe('float16');
    expect(manifest.computeDtype).toBe('float16');
    for (const t of Object.values(manifest.tensors)) expect(t.offset % 64).toBe(0);
    await expectWeights(out, manifest, byName(tinyF16));
  });

  it('float16 file: kept as is for float16 (fp16 compute), upcast exactly for float32; logits match fp16_weights_upcast', async () => {
    const g = await loadGolden(TINY);
    const asIs = join(root, 'tiny-f16-variant');
    const r1 = await convertCheckpoint({
      checkpointDir: TINY,
      variant: 'fp16',
      outDir: asIs,
      dtype: 'float16',
      computeDtype: 'float32',
    });
    expect(r1.manifest.files.map((f) => f.path)).toEqual(['config.json', 'model.fp16.safetensors']);
    await expectWeights(asIs, r1.manifest, byName(tinyF16));
    expect(await forwardError(asIs, r1.manifest, g, g.fp16_weights_upcast)).toBeLessThan(1e-5);

    const up = join(root, 'tiny-f16-up');
    const r2 = await convertCheckpoint({
      checkpointDir: TINY,
      variant: 'fp16',
      outDir: up,
      dtype: 'float32',
    });
    expect(r2.weights).toBe('converted');
    expect(r2.manifest.source.dtypes).toEqual(['F16']);
    await expectWeights(up, r2.manifest, byName(tinyF16, widen));
    expect(await forwardError(up, r2.manifest, g, g.fp16_weights_upcast)).toBeLessThan(1e-5);
  });

  it('sharded safetensors with rotary buffers: every shard placed, initializers point into the right shard', async () => {
    const src = await makeSafetensorsCheckpoint(
      join(root, 'src-sharded'),
      H128,
      [...h128F32, ...rotaryBuffers(2, 16)],
      {
        shards: 3,
      },
    );
    const out = join(root, 'h128-sharded');
    const { manifest } = await convertCheckpoint({ checkpointDir: src, outDir: out });
    expect(await listDir(out)).toEqual([
      'config.json',
      'manifest.json',
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
    ]);
    expect(new Set(Object.values(manifest.tensors).map((t) => t.location)).size).toBe(3);
    await verifyManifest(out);
    await expectWeights(out, manifest, byName(h128F32));
    const g = await loadGolden(H128);
    expect(await forwardError(out, manifest, g, g.sequences.len7)).toBeLessThan(1e-5);
  });

  it('BF16 safetensors: widened exactly to float32, rounded to float16', async () => {
    const bf16 = toBfloat16(h128F32);
    const src = await makeSafetensorsCheckpoint(join(root, 'src-bf16'), H128, bf16);
    const out32 = join(root, 'h128-bf16-f32');
    const r32 = await convertCheckpoint({ checkpointDir: src, outDir: out32, dtype: 'float32' });
    expect(r32.manifest.source.dtypes).toEqual(['BF16']);
    await expectWeights(out32, r32.manifest, byName(bf16, widen));

    // float16 has more mantissa bits than bfloat16, so in float16's normal range each value must
    // come back within half a float16 ulp (2^-11 relative), tiny ones within half the subnormal step.
    const out16 = join(root, 'h128-bf16-f16');
    const r16 = await convertCheckpoint({ checkpointDir: src, outDir: out16, dtype: 'float16' });
    let worst = 0;
    let exact = 0;
    let count = 0;
    for (const t of bf16) {
      const got = new Uint16Array((await manifestTensorBytes(out16, r16.manifest, t.name)).buffer.slice(0));
      const want = new Float32Array(widen(t).buffer.slice(0));
      const back = new Float32Array(Uint32Array.from(got, float16BitsToFloat32Bits).buffer);
      for (let i = 0; i < want.length; i++) {
        const err = Math.abs(back[i]! - want[i]!);
        worst = Math.max(worst, err / (Math.abs(want[i]!) * 2 ** -11 + 2 ** -25));
        if (err === 0) exact++;
        count++;
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
    expect(exact / count).toBeGreaterThan(0.99); // bf16 values of weights this size are exact in float16
  });

  it('pytorch_model.bin, single and sharded: converted into weights.bin with the source bytes; logits match golden', async () => {
    const g = await loadGolden(H128);
    const single = await makeTorchCheckpoint(join(root, 'src-pt'), H128, [
      ...h128F32,
      ...rotaryBuffers(2, 16),
    ]);
    const out1 = join(root, 'h128-pt');
    const r1 = await convertCheckpoint({ checkpointDir: single, outDir: out1 });
    expect(r1.weights).toBe('converted');
    expect(r1.manifest.source).toEqual({ format: 'pytorch', dtypes: ['F32'], files: ['pytorch_model.bin'] });
    expect(await listDir(out1)).toEqual(['config.json', 'manifest.json', 'weights.bin']);
    await expectWeights(out1, r1.manifest, byName(h128F32));
    expect(await forwardError(out1, r1.manifest, g, g.sequences.len7)).toBeLessThan(1e-5);

    const sharded = await makeTorchCheckpoint(join(root, 'src-pt-sharded'), H128, h128F32, { shards: 2 });
    const out2 = join(root, 'h128-pt-sharded');
    const r2 = await convertCheckpoint({ checkpointDir: sharded, outDir: out2 });
    expect(r2.manifest.source.files).toEqual([
      'pytorch_model-00001-of-00002.bin',
      'pytorch_model-00002-of-00002.bin',
    ]);
    await expectWeights(out2, r2.manifest, byName(h128F32));
    // Same weights, same layout: the data file is identical whichever form the source had.
    expect(r2.manifest.files.find((f) => f.path === 'weights.bin')).toEqual(
      r1.manifest.files.find((f) => f.path === 'weights.bin'),
    );
  });

  it('copies (with the same hashes) when the checkpoint is on another filesystem', async (ctx) => {
    const shm = '/dev/shm';
    const other = await stat(shm).catch(() => null);
    if (!other?.isDirectory() || other.dev === (await stat(root)).dev) ctx.skip();
    const src = await mkdtemp(join(shm, 'jslm-ckpt-'));
    try {
      await copyFile(join(H128, 'config.json'), join(src, 'config.json'));
      await copyFile(join(H128, 'model.safetensors'), join(src, 'model.safetensors'));
      const out = join(root, 'h128-copied');
      const { weights, manifest } = await convertCheckpoint({ checkpointDir: src, outDir: out });
      expect(weights).toBe('copied');
      await verifyManifest(out);
      const golden = JSON.parse(await readFile(join(H128, 'golden.json'), 'utf8')) as {
        weights: Record<string, string>;
      };
      expect(manifest.files.find((f) => f.path === 'model.safetensors')!.sha256).toBe(
        golden.weights['model.safetensors'],
      );
      await expectWeights(out, manifest, byName(h128F32));
    } finally {
      await rm(src, { recursive: true, force: true });
    }
  });

  it('replaces an earlier conversion only when asked, leaving nothing else in the parent folder', async () => {
    const parent = join(root, 'replace');
    const out = join(parent, 'model');
    await convertCheckpoint({ checkpointDir: H128, outDir: out, dtype: 'float16' });
    await expect(convertCheckpoint({ checkpointDir: H128, outDir: out })).rejects.toThrow(/already exists/);
    const { manifest } = await convertCheckpoint({ checkpointDir: H128, outDir: out, overwrite: true });
    expect(manifest.dtype).toBe('float32');
    expect((await verifyManifest(out)).dtype).toBe('float32');
    expect(await listDir(parent)).toEqual(['model']);
    expect(Object.keys(manifest.tensors)).toEqual([...expectedTensors(manifest.config).keys()]);
  });
});
