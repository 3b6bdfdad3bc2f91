// Bad checkpoints are refused with a message naming the file or tensor, and no output folder
// (nor a temporary one) is left behind.

import { copyFile, mkdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError } from '../../../gpu-function/src/checkpoint/errors.ts';
import type { InMemoryTensor } from '../../../gpu-function/src/checkpoint/safetensors-writer.ts';
import { convertCheckpoint } from '../../../gpu-function/src/convert/convert.ts';
import {
  H128,
  hasFixtures,
  listDir,
  loadTensors,
  makeSafetensorsCheckpoint,
  makeTorchCheckpoint,
  useTempRoot,
} from './helpers.ts';
import { contiguousStride, writeTorchFile } from './torch-save.ts';

describe.skipIf(!hasFixtures)('convertCheckpoint rejects bad checkpoints', () => {
  const tempRoot = useTempRoot();
  let root: string;
  let tensors: InMemoryTensor[];
  let config: Record<string, unknown>;
  let n = 0;

  beforeAll(async () => {
    root = await tempRoot();
    tensors = await loadTensors(join(H128, 'model.safetensors'));
    config = JSON.parse(await readFile(join(H128, 'config.json'), 'utf8')) as Record<string, unknown>;
  });

  /** Converts `checkpointDir` into a fresh parent folder; expects a CheckpointError and an untouched parent. */
  async function expectRejected(checkpointDir: string, message: RegExp): Promise<void> {
    const parent = join(root, `out-${n++}`);
    await mkdir(parent);
    const err = await convertCheckpoint({ checkpointDir, outDir: join(parent, 'model') }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(message);
    expect(await listDir(parent)).toEqual([]);
  }

  const dirFor = (name: string) => join(root, name);
  const without = (name: string) => tensors.filter((t) => t.name !== name);

  it('a missing tensor', async () => {
    const dir = await makeSafetensorsCheckpoint(
      dirFor('missing'),
      H128,
      without('transformer.layers.1.mlp.out_proj.weight'),
    );
    await expectRejected(dir, /missing 1 tensor\(s\): 'transformer\.layers\.1\.mlp\.out_proj\.weight'/);
  });

  it('an unexpected extra tensor (in safetensors and in a .bin)', async () => {
    const extra = { ...tensors[2]!, name: 'transformer.layers.2.attention.dense.weight' };
    const dir = await makeSafetensorsCheckpoint(dirFor('extra'), H128, [...tensors, extra]);
    await expectRejected(
      dir,
      /model\.safetensors: unexpected tensor 'transformer\.layers\.2\.attention\.dense\.weight'/,
    );
    const pt = await makeTorchCheckpoint(dirFor('extra-pt'), H128, [
      ...tensors,
      { ...extra, name: 'gpt_neox.embed_in.weight' },
    ]);
    await expectRejected(pt, /pytorch_model\.bin: unexpected tensor 'gpt_neox\.embed_in\.weight'/);
  });

  it('a wrong shape', async () => {
    const bad = tensors.map((t) =>
      t.name === 'transformer.layers.0.attention.dense.weight' ? { ...t, shape: [128, 512] } : t,
    );
    const dir = await makeSafetensorsCheckpoint(dirFor('shape'), H128, bad);
    await expectRejected(
      dir,
      /tensor 'transformer\.layers\.0\.attention\.dense\.weight' has shape \[128,512\], expected \[256,256\]/,
    );
  });

  it('an unknown dtype (safetensors F64, torch DoubleStorage)', async () => {
    const dir = await makeSafetensorsCheckpoint(dirFor('dtype'), H128, tensors);
    const file = join(dir, 'model.safetensors');
    const bytes = await readFile(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.toString('utf8', 8, 8 + n)) as Record<
      string,
      { dtype: string; shape: number[] }
    >;
    // Same byte length: half the elements at 8 bytes each.
    header['transformer.final_layer_norm.bias'] = {
      ...header['transformer.final_layer_norm.bias']!,
      dtype: 'F64',
      shape: [128],
    };
    let text = JSON.stringify(header);
    text += ' '.repeat((8 - (text.length % 8)) % 8);
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(text.length));
    await writeFile(file, Buffer.concat([prefix, Buffer.from(text), bytes.subarray(8 + n)]));
    await expectRejected(
      dir,
      /model\.safetensors: tensor 'transformer\.final_layer_norm\.bias' has unsupported dtype "F64"/,
    );

    const pt = dirFor('dtype-pt');
    await makeTorchCheckpoint(pt, H128, []);
    await writeTorchFile(
      join(pt, 'pytorch_model.bin'),
      tensors.map((t, i) => ({
        key: String(i),
        dtype: 'F32' as const,
        data: t.data,
        ...(t.name === 'embed_out.weight' ? { storageClass: 'DoubleStorage' } : {}),
      })),
      tensors.map((t, i) => ({
        name: t.name,
        storage: String(i),
        storageOffset: 0,
        shape: t.shape,
        stride: contiguousStride(t.shape),
      })),
    );
    await expectRejected(
      pt,
      /pytorch_model\.bin: tensor 'embed_out\.weight' has unsupported dtype torch\.DoubleStorage/,
    );
  });

  it('a truncated file (safetensors, .bin, a shard)', async () => {
    const dir = await makeSafetensorsCheckpoint(dirFor('truncated'), H128, tensors);
    const file = join(dir, 'model.safetensors');
    await truncate(file, (await readFile(file)).length - 1000);
    await expectRejected(
      dir,
      /model\.safetensors: truncated; tensor 'embed_out\.weight' ends at byte \d+ but the file has \d+/,
    );

    const pt = await makeTorchCheckpoint(dirFor('truncated-pt'), H128, tensors, { shards: 2 });
    const shard = join(pt, 'pytorch_model-00002-of-00002.bin');
    await truncate(shard, 100_000);
    await expectRejected(pt, /pytorch_model-00002-of-00002\.bin: not a zip archive or truncated/);

    const empty = await makeSafetensorsCheckpoint(dirFor('empty'), H128, tensors);
    await truncate(join(empty, 'model.safetensors'), 3);
    await expectRejected(empty, /model\.safetensors: truncated safetensors file \(3 bytes\)/);
  });

  it('a corrupt header (bad JSON, absurd length, bad data.pkl, not a zip)', async () => {
    const dir = await makeSafetensorsCheckpoint(dirFor('corrupt-json'), H128, tensors);
    const file = join(dir, 'model.safetensors');
    const bytes = await readFile(file);
    bytes.write('#', 9);
    await writeFile(file, bytes);
    await expectRejected(dir, /model\.safetensors: corrupt safetensors header \(not valid JSON\)/);

    const dir2 = await makeSafetensorsCheckpoint(dirFor('corrupt-length'), H128, tensors);
    const bytes2 = await readFile(join(dir2, 'model.safetensors'));
    bytes2.writeBigUInt64LE(1n << 40n, 0);
    await writeFile(join(dir2, 'model.safetensors'), bytes2);
    await expectRejected(dir2, /model\.safetensors: corrupt safetensors header length/);

    const pt = await makeTorchCheckpoint(dirFor('corrupt-pkl'), H128, tensors);
    const bin = await readFile(join(pt, 'pytorch_model.bin'));
    const at = bin.indexOf('_rebuild_tensor_v2');
    bin.write('X', at);
    await writeFile(join(pt, 'pytorch_model.bin'), bin);
    await expectRejected(
      pt,
      /pytorch_model\.bin: corrupt zip entry 'archive\/data\.pkl' \(size or CRC-32 mismatch\)/,
    );

    const notZip = await makeTorchCheckpoint(dirFor('not-zip'), H128, []);
    await writeFile(
      join(notZip, 'pytorch_model.bin'),
      Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46]),
    );
    await expectRejected(
      notZip,
      /pytorch_model\.bin: legacy \(pre-1\.6\) torch\.save format is not supported/,
    );
  });

  it('compressed tensor data in a .bin', async () => {
    const pt = await makeTorchCheckpoint(dirFor('deflated'), H128, tensors, { deflateStorages: true });
    await expectRejected(
      pt,
      /pytorch_model\.bin: storage of tensor 'transformer\.embed_in\.weight' is compressed in the zip; only uncompressed/,
    );
  });

  it('an unsupported config', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { ...config, use_parallel_residual: false },
        /config\.json: use_parallel_residual=false is not supported/,
      ],
      [
        { ...config, architectures: ['GPTNeoXForCausalLM'] },
        /config\.json: unsupported architecture \["GPTNeoXForCausalLM"\]/,
      ],
      [{ ...config, architectures: undefined, model_type: 'gpt_neox' }, /config\.json: unknown architecture/],
      [{ ...config, num_attention_heads: 3 }, /hidden_size 256 is not divisible by num_attention_heads 3/],
      [{ ...config, tie_word_embeddings: true }, /tie_word_embeddings=true is not supported/],
    ];
    for (const [i, [cfg, message]] of cases.entries()) {
      const dir = await makeSafetensorsCheckpoint(dirFor(`config-${i}`), H128, [], { config: cfg });
      await copyFile(join(H128, 'model.safetensors'), join(dir, 'model.safetensors'));
      await expectRejected(dir, message);
    }
  });

  it('missing pieces: no config.json, no weights, a shard the index names', async () => {
    const noConfig = dirFor('no-config');
    await mkdir(noConfig);
    await copyFile(join(H128, 'model.safetensors'), join(noConfig, 'model.safetensors'));
    await expectRejected(noConfig, /no-config: config\.json not found/);

    const noWeights = dirFor('no-weights');
    await mkdir(noWeights);
    await copyFile(join(H128, 'config.json'), join(noWeights, 'config.json'));
    await expectRejected(
      noWeights,
      /no-weights: no weights found \(looked for model\.safetensors\.index\.json/,
    );

    const sharded = await makeSafetensorsCheckpoint(dirFor('lost-shard'), H128, tensors, { shards: 2 });
    await rm(join(sharded, 'model-00002-of-00002.safetensors'));
    await expectRejected(
      sharded,
      /model\.safetensors\.index\.json: shard file model-00002-of-00002\.safetensors is missing/,
    );

    await expectRejected(dirFor('does-not-exist'), /does-not-exist: checkpoint folder not found/);
  });

  it('an interrupted conversion removes its temporary folder', async () => {
    const parent = join(root, 'aborted');
    await mkdir(parent);
    const abort = new AbortController();
    const err = await convertCheckpoint({
      checkpointDir: H128,
      outDir: join(parent, 'model'),
      dtype: 'float16',
      signal: abort.signal,
      onProgress: (p) => {
        if (p.stage === 'weights' && p.done > 0) abort.abort(new Error('stop here'));
      },
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('stop here');
    expect(await listDir(parent)).toEqual([]);
  });
});
