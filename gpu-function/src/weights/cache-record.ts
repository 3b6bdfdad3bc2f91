// What the cache folder holds, verified. Written last, after every file passed its SHA-256
// check and manifest.json was written: its presence means the folder is complete. A warm start
// trusts a file when the record's hash matches the manifest and its size and mtime are unchanged,
// so a restart does not re-hash gigabytes; anything else is fetched (or resumed) again.
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ManifestFile } from './manifest-files.ts';

export const VERIFIED_RECORD = '.verified.json';

export interface VerifiedFile {
  size: number;
  mtimeMs: number;
  sha256: string;
}

export interface VerifiedRecord {
  manifestSha256: string;
  files: Record<string, VerifiedFile>;
}

export async function readVerifiedRecord(cacheDir: string): Promise<VerifiedRecord | null> {
  try {
    const r = JSON.parse(await readFile(join(cacheDir, VERIFIED_RECORD), 'utf8')) as VerifiedRecord;
    return typeof r.manifestSha256 === 'string' && typeof r.files === 'object' ? r : null;
  } catch {
    return null;
  }
}

export async function writeVerifiedRecord(cacheDir: string, record: VerifiedRecord): Promise<void> {
  const path = join(cacheDir, VERIFIED_RECORD);
  await writeFile(`${path}.tmp`, JSON.stringify(record));
  await rename(`${path}.tmp`, path);
}

/** The file's entry if it is on disk unchanged since it was verified against this hash. */
export async function trustedCopy(
  cacheDir: string,
  file: ManifestFile,
  record: VerifiedRecord | null,
): Promise<VerifiedFile | null> {
  const entry = record?.files[file.path];
  if (!entry || entry.sha256 !== file.sha256 || entry.size !== file.size) return null;
  try {
    const s = await stat(join(cacheDir, file.path));
    return s.isFile() && s.size === entry.size && s.mtimeMs === entry.mtimeMs ? entry : null;
  } catch {
    return null;
  }
}
