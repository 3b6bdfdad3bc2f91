// Writes every tensor, converted to the target dtype, into one raw data file, chunk by chunk:
// memory use is a few MiB whatever the model size. Each tensor starts 64-byte aligned.
// Reading the next chunk and writing the previous one overlap with converting and hashing
// the current one (two buffers each way).

import { createHash } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { CheckpointError } from '../checkpoint/errors.ts';
import { DTYPE_BYTES, elementCount, type TensorRef } from '../checkpoint/tensor-ref.ts';
import type { WeightLocation } from '../model-folder/manifest.ts';
import { convertElements, OUTPUT_DTYPE_BYTES, type OutputDtype } from './dtype.ts';

export const WEIGHTS_FILE = 'weights.bin';
const ALIGNMENT = 64;
const CHUNK_ELEMENTS = 1024 * 1024;

export interface StreamedWeights {
  locations: Record<string, WeightLocation>;
  size: number;
  sha256: string;
}

interface Chunk {
  ref: TensorRef;
  /** Zero bytes before this chunk (alignment padding ahead of a tensor's first chunk). */
  padding: number;
  sourceOffset: number;
  elements: number;
  outputOffset: number;
}

/** Lays out the output file and cuts every tensor into chunks. */
function plan(tensors: ReadonlyMap<string, TensorRef>, dtype: OutputDtype, location: string) {
  const chunks: Chunk[] = [];
  const locations: Record<string, WeightLocation> = {};
  const outBytes = OUTPUT_DTYPE_BYTES[dtype];
  let position = 0;
  for (const ref of tensors.values()) {
    const padding = (ALIGNMENT - (position % ALIGNMENT)) % ALIGNMENT;
    position += padding;
    const elements = elementCount(ref.shape);
    locations[ref.name] = {
      location,
      offset: position,
      length: elements * outBytes,
      dtype,
      shape: [...ref.shape],
    };
    for (let done = 0; done < elements; done += CHUNK_ELEMENTS) {
      const n = Math.min(CHUNK_ELEMENTS, elements - done);
      chunks.push({
        ref,
        padding: done === 0 ? padding : 0,
        sourceOffset: ref.offset + done * DTYPE_BYTES[ref.dtype],
        elements: n,
        outputOffset: position + done * outBytes,
      });
    }
    position += elements * outBytes;
  }
  return { chunks, locations, size: position };
}

export async function streamWeights(options: {
  tensors: ReadonlyMap<string, TensorRef>;
  path: string;
  location: string;
  dtype: OutputDtype;
  onBytes: (sourceBytes: number, tensor: string) => void;
  signal?: AbortSignal;
}): Promise<StreamedWeights> {
  const { dtype, signal } = options;
  const { chunks, locations, size } = plan(options.tensors, dtype, options.location);
  const buffers = () => [0, 1].map(() => new Uint8Array(new ArrayBuffer(CHUNK_ELEMENTS * 4)));
  const src = buffers();
  const dst = buffers();
  const zeros = new Uint8Array(ALIGNMENT);
  const hash = createHash('sha256');
  const sources = new Map<string, FileHandle>();
  const out = await open(options.path, 'wx');

  const read = async (chunk: Chunk, into: Uint8Array) => {
    const { ref } = chunk;
    let fh = sources.get(ref.file);
    if (!fh) {
      fh = await open(ref.file, 'r');
      sources.set(ref.file, fh);
    }
    const length = chunk.elements * DTYPE_BYTES[ref.dtype];
    for (let got = 0; got < length; ) {
      const { bytesRead } = await fh.read(into, got, length - got, chunk.sourceOffset + got);
      if (bytesRead === 0)
        throw new CheckpointError(`${ref.file}: truncated while reading tensor '${ref.name}'`);
      got += bytesRead;
    }
  };

  let pendingRead: Promise<void> = chunks[0] ? read(chunks[0], src[0]!) : Promise.resolve();
  let pendingWrite: Promise<unknown> = Promise.resolve();
  try {
    for (const [i, chunk] of chunks.entries()) {
      signal?.throwIfAborted();
      await pendingRead;
      const next = chunks[i + 1];
      if (next) pendingRead = read(next, src[(i + 1) % 2]!);
      const output = dst[i % 2]!;
      const written = convertElements(chunk.ref.dtype, dtype, src[i % 2]!, output, chunk.elements);
      // Padding is left as a gap in the file (it reads back as zeros) but must be hashed.
      hash.update(zeros.subarray(0, chunk.padding));
      hash.update(output.subarray(0, written));
      await pendingWrite;
      pendingWrite = out.write(output, 0, written, chunk.outputOffset);
      options.onBytes(chunk.elements * DTYPE_BYTES[chunk.ref.dtype], chunk.ref.name);
    }
    await pendingWrite;
  } finally {
    await Promise.allSettled([pendingRead, pendingWrite]);
    await out.close();
    await Promise.all([...sources.values()].map((fh) => fh.close()));
  }
  return { locations, size, sha256: hash.digest('hex') };
}
