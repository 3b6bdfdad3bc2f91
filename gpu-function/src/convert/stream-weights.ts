// Writes every tensor, converted to its output form, into raw data files, chunk by chunk:
// memory use is a few MiB whatever the model size. A float tensor goes to weights.bin in the
// target dtype; a quantized one (quantize.ts) puts its codes in weights.bin and its scales in
// scales.bin. Each file is written front to back, so it is hashed as it is written; each tensor
// starts 64-byte aligned. Reading the next chunk and writing the previous one overlap with
// converting and hashing the current one (two buffers each way).

import { createHash, type Hash } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError } from '../checkpoint/errors.ts';
import { DTYPE_BYTES, elementCount, type TensorRef } from '../checkpoint/tensor-ref.ts';
import { quantizedLayout } from '../model/quantized-linear.ts';
import type { ManifestFile, WeightLocation } from '../model-folder/manifest.ts';
import { convertElements, OUTPUT_DTYPE_BYTES, type OutputDtype } from './dtype.ts';
import { QUANTIZED_DTYPE, type QuantScheme, quantizeRows } from './quantize.ts';

export const WEIGHTS_FILE = 'weights.bin';
export const SCALES_FILE = 'scales.bin';
const ALIGNMENT = 64;
const CHUNK_ELEMENTS = 1024 * 1024;

/** How one tensor is written. */
export type TensorOutput = { dtype: OutputDtype } | { quantize: QuantScheme };

export interface StreamedWeights {
  locations: Record<string, WeightLocation>;
  /** The files written (scales.bin only when something was quantized). */
  files: ManifestFile[];
}

interface Region {
  file: OutFile;
  /** Zero bytes before this chunk's bytes (alignment padding ahead of a tensor's first chunk). */
  padding: number;
  offset: number;
}

interface Chunk {
  ref: TensorRef;
  output: TensorOutput;
  sourceOffset: number;
  elements: number;
  /** Rows of a quantized chunk (whole rows only: blocks run along a row). */
  rows: number;
  data: Region;
  scales?: Region;
}

interface OutFile {
  name: string;
  position: number;
  hash: Hash;
  handle?: FileHandle;
  pending: Promise<unknown>;
}

const outFile = (name: string): OutFile => ({
  name,
  position: 0,
  hash: createHash('sha256'),
  pending: Promise.resolve(),
});

/** Reserves `bytes` at the next aligned position of `file`; returns the offset and padding. */
function reserve(file: OutFile, bytes: number): { offset: number; padding: number } {
  const padding = (ALIGNMENT - (file.position % ALIGNMENT)) % ALIGNMENT;
  const offset = file.position + padding;
  file.position = offset + bytes;
  return { offset, padding };
}

/** Lays out the output files and cuts every tensor into chunks. */
function plan(
  tensors: ReadonlyMap<string, TensorRef>,
  outputOf: (ref: TensorRef) => TensorOutput,
  weights: OutFile,
  scales: OutFile,
) {
  const chunks: Chunk[] = [];
  const locations: Record<string, WeightLocation> = {};
  for (const ref of tensors.values()) {
    const output = outputOf(ref);
    const elements = elementCount(ref.shape);
    const inBytes = DTYPE_BYTES[ref.dtype];
    if ('dtype' in output) {
      const outBytes = OUTPUT_DTYPE_BYTES[output.dtype];
      const { offset, padding } = reserve(weights, elements * outBytes);
      locations[ref.name] = {
        location: weights.name,
        offset,
        length: elements * outBytes,
        dtype: output.dtype,
        shape: [...ref.shape],
      };
      for (let done = 0; done < elements; done += CHUNK_ELEMENTS) {
        const n = Math.min(CHUNK_ELEMENTS, elements - done);
        chunks.push({
          ref,
          output,
          sourceOffset: ref.offset + done * inBytes,
          elements: n,
          rows: 0,
          data: { file: weights, padding: done === 0 ? padding : 0, offset: offset + done * outBytes },
        });
      }
      continue;
    }
    const scheme = output.quantize;
    if (ref.shape.length !== 2) {
      throw new CheckpointError(
        `tensor '${ref.name}' has shape [${ref.shape}]; only matrices can be quantized`,
      );
    }
    const [rows, cols] = ref.shape as [number, number];
    const layout = quantizedLayout(rows, cols, scheme.bits, scheme.blockSize);
    const scaleBytes = OUTPUT_DTYPE_BYTES[scheme.scaleDtype];
    const data = reserve(weights, layout.dataBytes);
    const scaleRegion = reserve(scales, layout.scaleCount * scaleBytes);
    locations[ref.name] = {
      location: weights.name,
      offset: data.offset,
      length: layout.dataBytes,
      dtype: QUANTIZED_DTYPE[scheme.bits],
      shape: [...ref.shape],
      quantization: {
        blockSize: scheme.blockSize,
        scales: {
          location: scales.name,
          offset: scaleRegion.offset,
          length: layout.scaleCount * scaleBytes,
          dtype: scheme.scaleDtype,
        },
      },
    };
    const rowsPerChunk = Math.max(1, Math.floor(CHUNK_ELEMENTS / cols));
    for (let row = 0; row < rows; row += rowsPerChunk) {
      const n = Math.min(rowsPerChunk, rows - row);
      const first = row === 0;
      chunks.push({
        ref,
        output,
        sourceOffset: ref.offset + row * cols * inBytes,
        elements: n * cols,
        rows: n,
        data: {
          file: weights,
          padding: first ? data.padding : 0,
          offset: data.offset + row * layout.blocks * layout.blobBytes,
        },
        scales: {
          file: scales,
          padding: first ? scaleRegion.padding : 0,
          offset: scaleRegion.offset + row * layout.blocks * scaleBytes,
        },
      });
    }
  }
  return { chunks, locations };
}

export async function streamWeights(options: {
  tensors: ReadonlyMap<string, TensorRef>;
  /** The output folder; weights.bin (and scales.bin) are created in it. */
  dir: string;
  /** Output of every tensor `outputOf` leaves unset, or of all when it is absent. */
  dtype: OutputDtype;
  outputOf?: (ref: TensorRef) => TensorOutput | undefined;
  onBytes: (sourceBytes: number, tensor: string) => void;
  signal?: AbortSignal;
}): Promise<StreamedWeights> {
  const { signal } = options;
  const weights = outFile(WEIGHTS_FILE);
  const scales = outFile(SCALES_FILE);
  const outputOf = (ref: TensorRef) => options.outputOf?.(ref) ?? { dtype: options.dtype };
  const { chunks, locations } = plan(options.tensors, outputOf, weights, scales);
  const used = scales.position > 0 ? [weights, scales] : [weights];

  // Buffers fit the largest chunk (a quantized chunk is whole rows, at least one).
  const maxElements = chunks.reduce((m, c) => Math.max(m, c.elements), CHUNK_ELEMENTS);
  const buffers = () => [0, 1].map(() => new Uint8Array(new ArrayBuffer(maxElements * 4)));
  const src = buffers();
  const dst = buffers();
  const scaleBuffers = [0, 1].map(() => new Uint8Array(new ArrayBuffer(maxElements * 4)));
  const widened = new Float32Array(maxElements);
  const zeros = new Uint8Array(ALIGNMENT);
  const sources = new Map<string, FileHandle>();
  for (const f of used) f.handle = await open(join(options.dir, f.name), 'wx');

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
  // Hashes and writes one region's bytes. The region before it in the same file was written by
  // an earlier chunk, so each file is hashed in order; padding is left as a gap in the file (it
  // reads back as zeros) but must be hashed.
  const emit = async (region: Region, bytes: Uint8Array) => {
    const { file } = region;
    file.hash.update(zeros.subarray(0, region.padding));
    file.hash.update(bytes);
    await file.pending;
    file.pending = (file.handle as FileHandle).write(bytes, 0, bytes.length, region.offset);
  };

  let pendingRead: Promise<void> = chunks[0] ? read(chunks[0], src[0]!) : Promise.resolve();
  let scaleWrites = 0;
  try {
    for (const [i, chunk] of chunks.entries()) {
      signal?.throwIfAborted();
      await pendingRead;
      const next = chunks[i + 1];
      if (next) pendingRead = read(next, src[(i + 1) % 2]!);
      const input = src[i % 2]!;
      const output = dst[i % 2]!;
      const { ref } = chunk;
      if ('dtype' in chunk.output) {
        const written = convertElements(ref.dtype, chunk.output.dtype, input, output, chunk.elements);
        await emit(chunk.data, output.subarray(0, written));
      } else {
        const scheme = chunk.output.quantize;
        const cols = ref.shape[1] as number;
        let values: Float32Array;
        if (ref.dtype === 'F32') values = new Float32Array(input.buffer, 0, chunk.elements);
        else {
          const bytes = new Uint8Array(widened.buffer, 0, chunk.elements * 4);
          convertElements(ref.dtype, 'float32', input, bytes, chunk.elements);
          values = widened.subarray(0, chunk.elements);
        }
        const layout = quantizedLayout(chunk.rows, cols, scheme.bits, scheme.blockSize);
        const scaleBytes = layout.scaleCount * OUTPUT_DTYPE_BYTES[scheme.scaleDtype];
        // Scales alternate buffers by their own count: float chunks in between write none.
        const scaleOut = scaleBuffers[scaleWrites++ % 2]!;
        const scaleView =
          scheme.scaleDtype === 'float32'
            ? new Float32Array(scaleOut.buffer, 0, layout.scaleCount)
            : new Uint16Array(scaleOut.buffer, 0, layout.scaleCount);
        try {
          quantizeRows(values, chunk.rows, cols, scheme, output, scaleView);
        } catch (err) {
          throw new CheckpointError(`tensor '${ref.name}': ${(err as Error).message}`);
        }
        await emit(chunk.data, output.subarray(0, layout.dataBytes));
        await emit(chunk.scales as Region, scaleOut.subarray(0, scaleBytes));
      }
      options.onBytes(chunk.elements * DTYPE_BYTES[ref.dtype], ref.name);
    }
    await Promise.all(used.map((f) => f.pending));
  } finally {
    await Promise.allSettled([pendingRead, ...used.map((f) => f.pending)]);
    await Promise.all(used.map((f) => f.handle?.close()));
    await Promise.all([...sources.values()].map((fh) => fh.close()));
  }
  return {
    locations,
    files: used.map((f) => ({ path: f.name, size: f.position, sha256: f.hash.digest('hex') })),
  };
}
