// The part of the converter's manifest.json the loader needs: which files make up the model,
// with size and SHA-256. The full schema belongs to the converter (../model-folder/manifest.ts);
// this only checks what a download depends on, so a hostile manifest cannot write outside the
// cache folder.
import { createHash } from 'node:crypto';

export const MANIFEST_NAME = 'manifest.json';

export interface ManifestFile {
  path: string;
  size: number;
  sha256: string;
}

export interface RemoteManifest {
  /** The manifest's own bytes, written last into the cache folder. */
  bytes: Uint8Array;
  sha256: string;
  files: ManifestFile[];
  totalBytes: number;
}

export class ManifestFormatError extends Error {
  override name = 'ManifestFormatError';
}

/** Relative, forward-slash paths inside the folder; nothing hidden, nothing climbing out. */
export function isSafeRelativePath(p: string): boolean {
  if (p === '' || p.startsWith('/') || p.includes('\\') || p.includes('\0')) return false;
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..' && !seg.startsWith('.'));
}

export function parseManifestFiles(bytes: Uint8Array): RemoteManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new ManifestFormatError(`${MANIFEST_NAME} is not valid JSON`);
  }
  const list = (doc as { files?: unknown } | null)?.files;
  if (!Array.isArray(list) || list.length === 0) {
    throw new ManifestFormatError(`${MANIFEST_NAME} has no 'files' list`);
  }
  const seen = new Set<string>();
  const files: ManifestFile[] = [];
  for (const f of list as unknown[]) {
    const { path, size, sha256 } = (f ?? {}) as Record<string, unknown>;
    if (typeof path !== 'string' || !isSafeRelativePath(path) || path === MANIFEST_NAME) {
      throw new ManifestFormatError(`${MANIFEST_NAME} lists an unsafe path: ${JSON.stringify(path)}`);
    }
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      throw new ManifestFormatError(`${MANIFEST_NAME}: '${path}' has an invalid size`);
    }
    if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) {
      throw new ManifestFormatError(`${MANIFEST_NAME}: '${path}' has an invalid sha256`);
    }
    if (seen.has(path)) throw new ManifestFormatError(`${MANIFEST_NAME} lists '${path}' twice`);
    seen.add(path);
    files.push({ path, size, sha256 });
  }
  return {
    bytes,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    files,
    totalBytes: files.reduce((n, f) => n + f.size, 0),
  };
}
