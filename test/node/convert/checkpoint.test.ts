// openCheckpoint on every published form: safetensors single/sharded/BF16, PyTorch .bin
// single/sharded/ZIP64, shared storages; each tensor must point at the right bytes.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError } from '../../../gpu-function/src/checkpoint/errors.ts';
import { openCheckpoint } from '../../../gpu-function/src/checkpoint/open.ts';
import type { InMemoryTensor } from '../../../gpu-function/src/checkpoint/safetensors-writer.ts';
import type { TensorRef } from '../../../gpu-function/src/checkpoint/tensor-ref.ts';
import { expectedTensors } from '../../../gpu-function/src/model/config.ts';
import {
  H128,
  hasFixtures,
  loadTensors,
  makeSafetensorsCheckpoint,
  makeTorchCheckpoint,
  rotaryBuffers,
  toBfloat16,
  useTempRoot,
} from './helpers.ts';
import { contiguousStride, writeTorchFile } from './torch-save.ts';

async function bytesOf(ref: TensorRef): Promise<Buffer> {
  const file = await readFile(ref.file);
  return file.subarray(ref.offset, ref.offset + ref.byteLength);
}

async function expectSameTensors(refs: Map<string, TensorRef>, source: InMemoryTensor[]): Promise<void> {
  expect(refs.size).toBe(source.length);
  for (const t of source) {
    const ref = refs.get(t.name);
    expect(ref, t.name).toBeDefined();
    expect(ref!.dtype).toBe(t.dtype);
    expect(ref!.shape).toEqual(t.shape);
    expect(Buffer.compare(await bytesOf(ref!), Buffer.from(t.data)), t.name).toBe(0);
  }
}

describe.skipIf(!hasFixtures)('openCheckpoint', () => {
  const tempRoot = useTempRoot();
  let root: string;
  let f32: InMemoryTensor[];

  beforeAll(async () => {
    root = await tempRoot();
    f32 = await loadTensors(join(H128, 'model.safetensors'));
  });

  it('reads the fixture folder: model.safetensors by default, model.fp16.safetensors as the fp16 variant', async () => {
    const ckpt = await openCheckpoint(H128);
    expect(ckpt.format).toBe('safetensors');
    expect(ckpt.files).toEqual([join(H128, 'model.safetensors')]);
    expect([...ckpt.tensors.keys()]).toEqual([...expectedTensors(ckpt.config).keys()]);
    await expectSameTensors(ckpt.tensors, f32);

    const fp16 = await openCheckpoint(H128, { variant: 'fp16' });
    expect(fp16.files).toEqual([join(H128, 'model.fp16.safetensors')]);
    expect([...fp16.tensors.values()].every((t) => t.dtype === 'F16')).toBe(true);
    expect(ckpt.config.headSize).toBe(128);
    expect(ckpt.rawConfig.hidden_size).toBe(256);
  });

  it('reads sharded safetensors through model.safetensors.index.json, ignoring rotary buffers', async () => {
    const dir = await makeSafetensorsCheckpoint(
      join(root, 'st-sharded'),
      H128,
      [...f32, ...rotaryBuffers(2, 16)],
      {
        shards: 3,
      },
    );
    const ckpt = await openCheckpoint(dir);
    expect(ckpt.files.map((f) => f.slice(dir.length + 1))).toEqual([
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
    ]);
    await expectSameTensors(ckpt.tensors, f32);
  });

  it('reads BF16 safetensors', async () => {
    const bf16 = toBfloat16(f32);
    const dir = await makeSafetensorsCheckpoint(join(root, 'st-bf16'), H128, bf16);
    await expectSameTensors((await openCheckpoint(dir)).tensors, bf16);
  });

  it('reads a single pytorch_model.bin (OrderedDict state dict with _metadata) pointing into the zip', async () => {
    const dir = await makeTorchCheckpoint(join(root, 'pt-single'), H128, [...f32, ...rotaryBuffers(2, 16)]);
    const ckpt = await openCheckpoint(dir);
    expect(ckpt.format).toBe('pytorch');
    expect(ckpt.files).toEqual([join(dir, 'pytorch_model.bin')]);
    await expectSameTensors(ckpt.tensors, f32);
    // Storages are 64-byte aligned inside the zip, as torch writes them.
    for (const ref of ckpt.tensors.values()) expect(ref.offset % 64).toBe(0);
  });

  it('reads sharded pytorch_model-0000x-of-0000y.bin (plain dicts, as transformers saves shards), F16 and BF16', async () => {
    const f16 = await loadTensors(join(H128, 'model.fp16.safetensors'));
    const dir = await makeTorchCheckpoint(join(root, 'pt-sharded'), H128, f16, { shards: 2 });
    await expectSameTensors((await openCheckpoint(dir)).tensors, f16);
    const bf16 = toBfloat16(f32);
    const dir2 = await makeTorchCheckpoint(join(root, 'pt-bf16'), H128, bf16, { shards: 4 });
    await expectSameTensors((await openCheckpoint(dir2)).tensors, bf16);
  });

  it('reads ZIP64 archives and a different archive folder name', async () => {
    const dir = await makeTorchCheckpoint(join(root, 'pt-zip64'), H128, f32, {
      zip64: true,
      archiveName: 'pytorch_model',
    });
    await expectSameTensors((await openCheckpoint(dir)).tensors, f32);
  });

  it('follows storage offsets of tensors that share one storage', async () => {
    // One storage holding every tensor back to back (as views of a flat buffer would be saved).
    const dir = join(root, 'pt-shared');
    await makeTorchCheckpoint(dir, H128, []);
    const flat = Buffer.concat(f32.map((t) => t.data));
    let offset = 0;
    const views = f32.map((t) => {
      const view = {
        name: t.name,
        storage: '0',
        storageOffset: offset,
        shape: t.shape,
        stride: contiguousStride(t.shape),
      };
      offset += t.data.byteLength / 4;
      return view;
    });
    await writeTorchFile(join(dir, 'pytorch_model.bin'), [{ key: '0', dtype: 'F32', data: flat }], views);
    await expectSameTensors((await openCheckpoint(dir)).tensors, f32);
  });

  it('rejects a non-contiguous tensor, naming it', async () => {
    const dir = join(root, 'pt-strided');
    await makeTorchCheckpoint(dir, H128, []);
    const storages = f32.map((t, i) => ({ key: String(i), dtype: 'F32' as const, data: t.data }));
    const views = f32.map((t, i) => ({
      name: t.name,
      storage: String(i),
      storageOffset: 0,
      shape: t.shape,
      // dense.weight saved as a transpose view: column-major strides
      stride: t.name.endsWith('0.attention.dense.weight') ? [1, t.shape[0]!] : contiguousStride(t.shape),
    }));
    await writeTorchFile(join(dir, 'pytorch_model.bin'), storages, views);
    const err = await openCheckpoint(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(
      /pytorch_model\.bin: tensor 'transformer\.layers\.0\.attention\.dense\.weight' is not contiguous/,
    );
  });

  it('rejects a tensor that reaches past its storage', async () => {
    const dir = join(root, 'pt-overrun');
    await makeTorchCheckpoint(dir, H128, []);
    const storages = f32.map((t, i) => ({ key: String(i), dtype: 'F32' as const, data: t.data }));
    const views = f32.map((t, i) => ({
      name: t.name,
      storage: String(i),
      storageOffset: t.name === 'embed_out.weight' ? 1 : 0,
      shape: t.shape,
      stride: contiguousStride(t.shape),
    }));
    await writeTorchFile(join(dir, 'pytorch_model.bin'), storages, views);
    await expect(openCheckpoint(dir)).rejects.toThrow(/tensor 'embed_out\.weight' lies outside its storage/);
  });

  it('picks the only safetensors file of a folder without the standard name', async () => {
    const dir = await makeSafetensorsCheckpoint(join(root, 'st-renamed'), H128, []);
    const { rename } = await import('node:fs/promises');
    const { writeSafetensorsFile } = await import(
      '../../../gpu-function/src/checkpoint/safetensors-writer.ts'
    );
    await writeSafetensorsFile(join(dir, 'weights-only.safetensors'), f32);
    await rename(join(dir, 'model.safetensors'), join(dir, 'unused.txt'));
    const ckpt = await openCheckpoint(dir);
    expect(ckpt.files).toEqual([join(dir, 'weights-only.safetensors')]);
  });
});
