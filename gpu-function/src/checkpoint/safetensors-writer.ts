// Writing .safetensors files: the header is laid out first (every tensor's place is known
// from its shape), so the data can then be streamed tensor by tensor.

import { open } from 'node:fs/promises';
import { DTYPE_BYTES, elementCount, type TensorDtype } from './tensor-ref.ts';

export interface SafetensorsEntry {
  name: string;
  dtype: TensorDtype;
  shape: number[];
}

export interface SafetensorsLayout {
  /** The 8-byte length prefix and the space-padded JSON header. */
  header: Buffer;
  /** Absolute file offset of each entry's data, in entry order. */
  offsets: number[];
  fileSize: number;
}

/** Packs the entries back to back in the given order, as the format requires. */
export function safetensorsLayout(
  entries: readonly SafetensorsEntry[],
  metadata: Record<string, string> = { format: 'pt' },
): SafetensorsLayout {
  const json: Record<string, unknown> = { __metadata__: metadata };
  const relative: number[] = [];
  let pos = 0;
  for (const e of entries) {
    const bytes = elementCount(e.shape) * DTYPE_BYTES[e.dtype];
    json[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [pos, pos + bytes] };
    relative.push(pos);
    pos += bytes;
  }
  let text = JSON.stringify(json);
  // Pad so the data starts 8-byte aligned.
  text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const body = Buffer.from(text, 'utf8');
  const header = Buffer.alloc(8 + body.length);
  header.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(header, 8);
  return { header, offsets: relative.map((r) => header.length + r), fileSize: header.length + pos };
}

export interface InMemoryTensor extends SafetensorsEntry {
  /** Little-endian element bytes. */
  data: Uint8Array;
}

/** Writes small tensors held in memory (tests, tools); large models use safetensorsLayout and stream. */
export async function writeSafetensorsFile(path: string, tensors: readonly InMemoryTensor[]): Promise<void> {
  const layout = safetensorsLayout(tensors);
  const fh = await open(path, 'w');
  try {
    await fh.write(layout.header, 0, layout.header.length, 0);
    for (const [i, t] of tensors.entries()) {
      const expected = elementCount(t.shape) * DTYPE_BYTES[t.dtype];
      if (t.data.byteLength !== expected) {
        throw new Error(`tensor '${t.name}': ${t.data.byteLength} bytes given, shape needs ${expected}`);
      }
      await fh.write(t.data, 0, t.data.byteLength, layout.offsets[i]);
    }
  } finally {
    await fh.close();
  }
}
