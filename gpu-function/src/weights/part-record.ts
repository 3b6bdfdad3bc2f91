// Resumption state of one file being downloaded: which fixed-size parts are already on disk.
// Kept beside the partial data in `<cache>/.partial/`, rewritten atomically after each part,
// and valid only for the same object (ETag), size and part size.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface PartRecord {
  etag: string;
  size: number;
  partBytes: number;
  done: number[];
}

export const PARTIAL_DIR = '.partial';

export function partialPaths(cacheDir: string, filePath: string) {
  const base = join(cacheDir, PARTIAL_DIR, encodeURIComponent(filePath));
  return { data: `${base}.part`, record: `${base}.json` };
}

export async function readPartRecord(path: string): Promise<PartRecord | null> {
  try {
    const r = JSON.parse(await readFile(path, 'utf8')) as PartRecord;
    if (typeof r.etag !== 'string' || !Array.isArray(r.done)) return null;
    return r;
  } catch {
    return null;
  }
}

/** Writes records of one file one after another, each atomically (temp file + rename). */
export class PartRecordWriter {
  private chain: Promise<void> = Promise.resolve();
  private readonly path: string;
  readonly record: PartRecord;

  constructor(path: string, record: PartRecord) {
    this.path = path;
    this.record = record;
  }

  markDone(index: number): Promise<void> {
    this.record.done.push(index);
    return this.save();
  }

  save(): Promise<void> {
    const snapshot = JSON.stringify(this.record);
    this.chain = this.chain.then(async () => {
      await mkdir(dirname(this.path), { recursive: true });
      const tmp = `${this.path}.tmp`;
      await writeFile(tmp, snapshot);
      await rename(tmp, this.path);
    });
    return this.chain;
  }
}

export async function removePartial(cacheDir: string, filePath: string): Promise<void> {
  const p = partialPaths(cacheDir, filePath);
  await rm(p.data, { force: true });
  await rm(p.record, { force: true });
}
