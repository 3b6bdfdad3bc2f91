// Source safetensors files already in the target dtype are used as they are: hard-linked into
// the output folder when it is on the same filesystem, else copied. Either way they are hashed.

import { createHash } from 'node:crypto';
import { link, open, stat } from 'node:fs/promises';
import { sha256File } from '../model-folder/hash.ts';

const CHUNK_BYTES = 8 * 1024 * 1024;

export interface PlacedFile {
  size: number;
  sha256: string;
  linked: boolean;
}

async function copyHashing(src: string, dst: string, onBytes: (n: number) => void, signal?: AbortSignal) {
  const hash = createHash('sha256');
  const input = await open(src, 'r');
  const output = await open(dst, 'wx');
  try {
    const buf = Buffer.allocUnsafeSlow(CHUNK_BYTES);
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await input.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      await output.write(chunk);
      onBytes(bytesRead);
    }
  } finally {
    await Promise.all([input.close(), output.close()]);
  }
  return hash.digest('hex');
}

/** Puts `src` at `dst` (link, else copy) and returns its size and SHA-256. */
export async function placeFile(
  src: string,
  dst: string,
  onBytes: (n: number) => void,
  signal?: AbortSignal,
): Promise<PlacedFile> {
  const { size } = await stat(src);
  let linked = true;
  try {
    await link(src, dst);
  } catch {
    linked = false; // other filesystem, or links not allowed: copy instead
  }
  const sha256 = linked ? await sha256File(dst, onBytes) : await copyHashing(src, dst, onBytes, signal);
  return { size, sha256, linked };
}
