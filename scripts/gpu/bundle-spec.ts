// What the GPU bundle is: one xz-compressed tar of everything the lent GPU machine lacks (Node,
// onnxruntime-node 1.29.0 with the CUDA 13 provider, the fixture goldens), cut into parts that
// each fit one device call, plus a manifest and a SHA256SUMS file. The device has no Node until
// the bundle is unpacked, so its scripts check the parts with `sha256sum -c SHA256SUMS`; this
// module writes that file and checks the same thing from Node (preparation, tests).

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';

export const BUNDLE_FORMAT = 'jslm-gpu-bundle/1';
/** Folder (relative to the repository root) the preparation writes and the device calls carry. */
export const BUNDLE_DIR = '.cache/gpu-bundle';
export const ARCHIVE_NAME = 'bundle.tar.xz';
export const SUMS_FILE = 'SHA256SUMS';
export const MANIFEST_FILE = 'manifest.json';
/** Top folder inside the archive. */
export const ARCHIVE_ROOT = 'jslm-gpu';
/**
 * A device call carries at most 64 MiB together with the working tree (about 2 MB now); 60 MiB
 * parts leave room for the tree to grow.
 */
export const DEFAULT_PART_BYTES = 60 * 1024 * 1024;

export interface BundleFile {
  name: string;
  size: number;
  sha256: string;
}

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  createdAt: string;
  /** Fingerprint of the inputs: an unchanged one means the parts need not be rebuilt. */
  inputs: string;
  archive: BundleFile;
  partBytes: number;
  parts: BundleFile[];
  /** What is inside, with versions (see prepare.ts). */
  contents: Record<string, unknown>;
}

export const partName = (index: number) => `${ARCHIVE_NAME}.part-${String(index + 1).padStart(2, '0')}`;

export function partCount(totalBytes: number, partBytes: number): number {
  if (!Number.isInteger(partBytes) || partBytes <= 0) throw new RangeError(`bad part size ${partBytes}`);
  return Math.max(1, Math.ceil(totalBytes / partBytes));
}

/** The `sha256sum` format: `<hex>  <name>` per line (two spaces: text mode). */
export function formatSums(files: readonly BundleFile[]): string {
  return files.map((f) => `${f.sha256}  ${f.name}\n`).join('');
}

export function parseSums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) throw new Error(`not a sha256sum line: ${JSON.stringify(line)}`);
    sums.set(m[2] as string, m[1] as string);
  }
  return sums;
}

export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface PartsCheck {
  ok: string[];
  missing: string[];
  /** Present but of the wrong size or hash. */
  bad: string[];
}

/** Which of the manifest's parts are in `dir`, intact. */
export async function checkParts(dir: string, manifest: Pick<BundleManifest, 'parts'>): Promise<PartsCheck> {
  const result: PartsCheck = { ok: [], missing: [], bad: [] };
  for (const part of manifest.parts) {
    const file = path.join(dir, part.name);
    const size = await stat(file).then(
      (s) => s.size,
      () => -1,
    );
    if (size < 0) result.missing.push(part.name);
    else if (size !== part.size || (await sha256OfFile(file)) !== part.sha256) result.bad.push(part.name);
    else result.ok.push(part.name);
  }
  return result;
}

/** Parts per device call: part i goes with call i; the last call also runs the proof. */
export function callPlan(manifest: Pick<BundleManifest, 'parts'>): { call: number; carry: string[] }[] {
  const always = [`${BUNDLE_DIR}/${SUMS_FILE}`, `${BUNDLE_DIR}/${MANIFEST_FILE}`];
  return manifest.parts.map((p, i) => ({ call: i + 1, carry: [...always, `${BUNDLE_DIR}/${p.name}`] }));
}
