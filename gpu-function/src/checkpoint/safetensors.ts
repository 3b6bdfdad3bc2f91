import { open } from 'node:fs/promises';
import { DTYPE_BYTES, type TensorDtype, type TensorRef } from './tensor-ref.ts';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/**
 * Reads a .safetensors header: u64 LE length n, n bytes of JSON, then packed tensor data.
 * Returns where each tensor's bytes are; validates offsets against the file size.
 */
export async function readSafetensorsIndex(file: string): Promise<TensorRef[]> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size < 8) throw new CheckpointError(`${file}: truncated safetensors file (${size} bytes)`);
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const n = Number(lenBuf.readBigUInt64LE(0));
    if (n <= 0 || n > MAX_HEADER_BYTES || 8 + n > size) {
      throw new CheckpointError(`${file}: corrupt safetensors header length ${n} (file is ${size} bytes)`);
    }
    const headerBuf = Buffer.alloc(n);
    await fh.read(headerBuf, 0, n, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBuf.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new CheckpointError(`${file}: safetensors header is not valid JSON`);
    }
    const dataStart = 8 + n;
    const refs: TensorRef[] = [];
    for (const [name, meta] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const m = meta as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const dtype = m.dtype as TensorDtype;
      if (!(typeof m.dtype === 'string' && m.dtype in DTYPE_BYTES)) {
        throw new CheckpointError(
          `${file}: tensor '${name}' has unsupported dtype ${JSON.stringify(m.dtype)}`,
        );
      }
      const shape = m.shape;
      const offsets = m.data_offsets;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new CheckpointError(`${file}: tensor '${name}' has an invalid shape`);
      }
      if (!Array.isArray(offsets) || offsets.length !== 2) {
        throw new CheckpointError(`${file}: tensor '${name}' has invalid data_offsets`);
      }
      const [begin, end] = offsets as [number, number];
      const elements = (shape as number[]).reduce((a, b) => a * b, 1);
      if (end - begin !== elements * DTYPE_BYTES[dtype]) {
        throw new CheckpointError(`${file}: tensor '${name}' byte length does not match its shape and dtype`);
      }
      if (dataStart + end > size) {
        throw new CheckpointError(`${file}: truncated; tensor '${name}' ends past the end of the file`);
      }
      refs.push({
        name,
        dtype,
        shape: shape as number[],
        file,
        offset: dataStart + begin,
        byteLength: end - begin,
      });
    }
    return refs;
  } finally {
    await fh.close();
  }
}
