// `convert --weights int4|int8`: what a quantized folder holds (the scheme in the manifest,
// codes in weights.bin and scales in scales.bin, both hashed), that its bytes are those of the
// quantizer whatever the chunking, the command line's checks, and the engine serving it.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { convertCheckpoint } from '../../../gpu-function/src/convert/convert.ts';
import { quantizeRows } from '../../../gpu-function/src/convert/quantize.ts';
import { GenerationEngine } from '../../../gpu-function/src/engine/engine.ts';
import { openForwardSession } from '../../../gpu-function/src/model/forward-session.ts';
import { quantizedLayout } from '../../../gpu-function/src/model/quantized-linear.ts';
import { type Manifest, verifyManifest } from '../../../gpu-function/src/model-folder/manifest.ts';
import { H128, hasFixtures, listDir, loadTensors, TINY, useTempRoot } from '../convert/helpers.ts';

async function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['scripts/cli.ts', 'convert', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

async function regionBytes(dir: string, r: { location: string; offset: number; length: number }) {
  return (await readFile(join(dir, r.location))).subarray(r.offset, r.offset + r.length);
}

/** The quantizer's output for one float32 fixture tensor, computed in memory in one piece. */
async function expectedCodes(
  fixture: string,
  name: string,
  bits: 4 | 8,
  blockSize: number,
  scaleDtype: 'float32' | 'float16',
) {
  const t = (await loadTensors(join(fixture, 'model.safetensors'))).find((x) => x.name === name)!;
  const [rows, cols] = t.shape as [number, number];
  const values = new Float32Array(new Uint8Array(t.data).buffer);
  const layout = quantizedLayout(rows, cols, bits, blockSize);
  const data = new Uint8Array(layout.dataBytes);
  const scales =
    scaleDtype === 'float32' ? new Float32Array(layout.scaleCount) : new Uint16Array(layout.scaleCount);
  quantizeRows(values, rows, cols, { bits, blockSize, scaleDtype }, data, scales);
  return { data, scales: new Uint8Array(scales.buffer) };
}

describe.skipIf(!hasFixtures)('quantized conversion', () => {
  const tempRoot = useTempRoot();

  it('convert --weights int4: the scheme in the manifest, codes and scales hashed, the embedding float16', async () => {
    const out = join(await tempRoot(), 'int4');
    const r = await cli('--checkpoint', H128, '--out', out, '--weights', 'int4');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${out}\n`);
    expect(r.stderr).toMatch(/converted safetensors \(F32\) to int4 \(blocks of 32; the rest float32\)/);
    expect(await listDir(out)).toEqual(['config.json', 'manifest.json', 'scales.bin', 'weights.bin']);
    const manifest = await verifyManifest(out); // sizes and SHA-256 of every file
    expect(manifest.quantization).toEqual({
      dtype: 'int4',
      blockSize: 32,
      scheme: 'symmetric',
      scaleDtype: 'float32',
      embedding: 'float16',
    });
    const t = manifest.tensors;
    expect(t['transformer.embed_in.weight']).toMatchObject({ dtype: 'float16', length: 1024 * 256 * 2 });
    expect(t['transformer.final_layer_norm.weight']).toMatchObject({ dtype: 'float32', length: 256 * 4 });
    // [768, 256] in blocks of 32: 8 blocks of 16 bytes per row, one float32 scale per block.
    expect(t['transformer.layers.1.attention.query_key_value.weight']).toMatchObject({
      dtype: 'int4',
      length: 768 * 8 * 16,
      shape: [768, 256],
      quantization: {
        blockSize: 32,
        scales: { location: 'scales.bin', length: 768 * 8 * 4, dtype: 'float32' },
      },
    });
    const quantized = Object.values(t).filter((x) => x.dtype === 'int4');
    expect(quantized).toHaveLength(4 * 2 + 1); // 4 projections per layer + the LM head
    for (const x of Object.values(t)) {
      expect(x.offset % 64).toBe(0);
      if (x.quantization) expect(x.quantization.scales.offset % 64).toBe(0);
    }
  });

  it('streams the LM head in several chunks: bytes equal the quantizer run on the whole tensor', async () => {
    // tiny's embed_out is [65536, 64]: 4 chunks of whole rows. int8 with float16 scales.
    const out = join(await tempRoot(), 'int8');
    const { manifest } = await convertCheckpoint({
      checkpointDir: TINY,
      outDir: out,
      computeDtype: 'float16',
      quantize: { dtype: 'int8', blockSize: 16 },
    });
    expect(manifest.quantization).toMatchObject({ dtype: 'int8', blockSize: 16, scaleDtype: 'float16' });
    for (const name of ['embed_out.weight', 'transformer.layers.1.mlp.out_proj.weight']) {
      const entry = manifest.tensors[name]!;
      const want = await expectedCodes(TINY, name, 8, 16, 'float16');
      expect(Buffer.compare(await regionBytes(out, entry), want.data), name).toBe(0);
      expect(Buffer.compare(await regionBytes(out, entry.quantization!.scales), want.scales), name).toBe(0);
    }
    await verifyManifest(out);
  });

  it('refuses bad quantization arguments with usage (exit 2)', async () => {
    const base = ['--checkpoint', H128, '--out', '/tmp/never-written'];
    const bits = await cli(...base, '--weights', 'int3');
    expect(bits.code).toBe(2);
    expect(bits.stderr).toMatch(/--weights must be int4 or int8 \(got 'int3'\)[\s\S]*usage:/);
    const block = await cli(...base, '--weights', 'int4', '--block-size', '48');
    expect(block.code).toBe(2);
    expect(block.stderr).toMatch(/--block-size must be one of 16, 32, 64, 128, 256 \(got '48'\)/);
    const alone = await cli(...base, '--block-size', '64');
    expect(alone.code).toBe(2);
    expect(alone.stderr).toMatch(/--block-size needs --weights int4\|int8/);
  });

  it('a manifest whose scales lie outside their file is refused before anything is built', async () => {
    const out = join(await tempRoot(), 'bad');
    const { manifest } = await convertCheckpoint({
      checkpointDir: H128,
      outDir: out,
      quantize: { dtype: 'int8' },
    });
    const { parseManifest } = await import('../../../gpu-function/src/model-folder/manifest.ts');
    const broken = structuredClone(manifest) as Manifest;
    broken.tensors['embed_out.weight']!.quantization!.scales.offset += 1 << 20;
    expect(() => parseManifest(broken)).toThrow(/scales of 'embed_out.weight' lie outside scales.bin/);
    delete broken.tensors['embed_out.weight']!.quantization;
    expect(() => parseManifest(broken)).toThrow(/'embed_out.weight' \(int8\) has no valid block size/);
  });

  it.each(['int8', 'int4'] as const)(
    'the engine serves a %s folder: greedy tokens are those of its forward graph',
    async (dtype) => {
      const out = join(await tempRoot(), `engine-${dtype}`);
      await convertCheckpoint({ checkpointDir: H128, outDir: out, quantize: { dtype } });
      const golden = JSON.parse(await readFile(join(H128, 'golden.json'), 'utf8'));
      const prompt: number[] = golden.greedy.prompt_ids;

      // Greedy by hand with the forward graph and its cache, prepacked weights as the engine has.
      const forward = await openForwardSession(out, { intraOpNumThreads: 1 });
      const expected: number[] = [];
      try {
        let result = await forward.run({ inputIds: [prompt] });
        let rows = prompt.length;
        for (let i = 0; i < 12; i++) {
          const V = forward.config.vocabSize;
          const last = result.logits.subarray((rows - 1) * V, rows * V);
          const next = last.indexOf(Math.max(...last));
          expected.push(next);
          result = await forward.run({ inputIds: [[next]], past: result.present });
          rows = 1;
        }
      } finally {
        await forward.release();
      }
      // The engine stops at end-of-text and does not stream it.
      const eos = expected.indexOf(forward.config.eosTokenId);
      if (eos >= 0) expected.length = eos;

      const engine = await GenerationEngine.open(out, { intraOpNumThreads: 1 });
      try {
        const ids: number[] = [];
        for await (const chunk of engine.generate({ promptIds: prompt, maxNewTokens: 12, temperature: 0 }))
          ids.push(...chunk.ids);
        expect(expected.length).toBeGreaterThan(5);
        expect(ids).toEqual(expected);
      } finally {
        await engine.close();
      }
    },
  );
});
