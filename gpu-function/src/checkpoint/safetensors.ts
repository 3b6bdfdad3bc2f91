import { open } from 'node:fs/promises';
import { CheckpointError } from './errors.ts';
import { DTYPE_BYTES, elementCount, isTensorDtype, type ReadOptions, type TensorRef } from './tensor-ref.ts';

export { CheckpointError } from './errors.ts';

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Reads a .safetensors header: u64 LE length n, n bytes of JSON, then packed tensor data.
 * Returns where each tensor's bytes are; validates dtypes, shapes and offsets against the file size.
 */
export async function readSafetensorsIndex(file: string, options: ReadOptions = {}): Promise<TensorRef[]> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size < 8) throw new CheckpointError(`${file}: truncated safetensors file (${size} bytes)`);
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const n = lenBuf.readBigUInt64LE(0);
    if (n <= 0n || n > BigInt(MAX_HEADER_BYTES) || 8n + n > BigInt(size)) {
      throw new CheckpointError(`${file}: corrupt safetensors header length ${n} (file is ${size} bytes)`);
    }
    const headerBuf = Buffer.alloc(Number(n));
    await fh.read(headerBuf, 0, headerBuf.length, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch {
      throw new CheckpointError(`${file}: corrupt safetensors header (not valid JSON)`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) {
      throw new CheckpointError(`${file}: corrupt safetensors header (not a JSON object)`);
    }
    const dataStart = 8 + headerBuf.length;
    const refs: TensorRef[] = [];
    for (const [name, meta] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__' || options.skip?.(name)) continue;
      const m = (meta ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (!isTensorDtype(m.dtype)) {
        throw new CheckpointError(
          `${file}: tensor '${name}' has unsupported dtype ${JSON.stringify(m.dtype)} (expected F32, F16 or BF16)`,
        );
      }
      const dtype = m.dtype;
      const shape = m.shape;
      if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
        throw new CheckpointError(`${file}: tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
      }
      const offsets = m.data_offsets;
      if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)) {
        throw new CheckpointError(
          `${file}: tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`,
        );
      }
      const [begin, end] = offsets as [number, number];
      if (end < begin || end - begin !== elementCount(shape) * DTYPE_BYTES[dtype]) {
        throw new CheckpointError(
          `${file}: tensor '${name}' data_offsets [${begin}, ${end}] do not match shape [${shape}] of ${dtype}`,
        );
      }
      if (dataStart + end > size) {
        throw new CheckpointError(
          `${file}: truncated; tensor '${name}' ends at byte ${dataStart + end} but the file has ${size}`,
        );
      }
      refs.push({ name, dtype, shape, file, offset: dataStart + begin, byteLength: end - begin });
    }
    return refs;
  } finally {
    await fh.close();
  }
}
