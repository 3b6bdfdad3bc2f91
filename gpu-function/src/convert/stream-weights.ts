// Writes every tensor, converted to the target dtype, into one raw data file, chunk by chunk:
// memory use is a few MiB whatever the model size. Each tensor starts 64-byte aligned.

import { createHash } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { CheckpointError } from '../checkpoint/errors.ts';
import { DTYPE_BYTES, elementCount, type TensorRef } from '../checkpoint/tensor-ref.ts';
import { convertElements, OUTPUT_DTYPE_BYTES, type OutputDtype } from './dtype.ts';
import type { WeightLocation } from './manifest.ts';

export const WEIGHTS_FILE = 'weights.bin';
const ALIGNMENT = 64;
const CHUNK_ELEMENTS = 1024 * 1024;

export interface StreamedWeights {
  locations: Record<string, WeightLocation>;
  size: number;
  sha256: string;
}

async function readFully(fh: FileHandle, ref: TensorRef, into: Uint8Array, length: number, position: number) {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(into, got, length - got, position + got);
    if (bytesRead === 0) {
      throw new CheckpointError(`${ref.file}: truncated while reading tensor '${ref.name}'`);
    }
    got += bytesRead;
  }
}

export async function streamWeights(options: {
  tensors: ReadonlyMap<string, TensorRef>;
  path: string;
  location: string;
  dtype: OutputDtype;
  onBytes: (sourceBytes: number, tensor: string) => void;
  signal?: AbortSignal;
}): Promise<StreamedWeights> {
  const { tensors, dtype, signal } = options;
  const hash = createHash('sha256');
  const src = new Uint8Array(new ArrayBuffer(CHUNK_ELEMENTS * 4));
  const dst = new Uint8Array(new ArrayBuffer(CHUNK_ELEMENTS * 4));
  const padding = new Uint8Array(ALIGNMENT);
  const sources = new Map<string, FileHandle>();
  const out = await open(options.path, 'wx');
  const locations: Record<string, WeightLocation> = {};
  let position = 0;
  const write = async (bytes: Uint8Array) => {
    hash.update(bytes);
    await out.write(bytes, 0, bytes.length, position);
    position += bytes.length;
  };
  try {
    for (const ref of tensors.values()) {
      let fh = sources.get(ref.file);
      if (!fh) {
        fh = await open(ref.file, 'r');
        sources.set(ref.file, fh);
      }
      await write(padding.subarray(0, (ALIGNMENT - (position % ALIGNMENT)) % ALIGNMENT));
      const start = position;
      const elements = elementCount(ref.shape);
      const sourceBytes = DTYPE_BYTES[ref.dtype];
      for (let done = 0; done < elements; ) {
        signal?.throwIfAborted();
        const n = Math.min(CHUNK_ELEMENTS, elements - done);
        await readFully(fh, ref, src, n * sourceBytes, ref.offset + done * sourceBytes);
        const written = convertElements(ref.dtype, dtype, src, dst, n);
        await write(dst.subarray(0, written));
        done += n;
        options.onBytes(n * sourceBytes, ref.name);
      }
      locations[ref.name] = {
        location: options.location,
        offset: start,
        length: elements * OUTPUT_DTYPE_BYTES[dtype],
        dtype,
        shape: [...ref.shape],
      };
    }
  } finally {
    await out.close();
    await Promise.all([...sources.values()].map((fh) => fh.close()));
  }
  return { locations, size: position, sha256: hash.digest('hex') };
}
