// manifest.json: what a converted model folder holds, so a consumer (the GPU function after a
// download) can check it is complete and intact, and can find every weight without the checkpoint.

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelConfig } from '../model/config.ts';
import {
  BLOCK_SIZES,
  type BlockQuantization,
  isQuantizedDtype,
  type QuantizedDtype,
  type ScaleDtype,
} from '../model/quantized-linear.ts';
import { sha256File } from './hash.ts';

/** Element types of float weights in a converted folder (the converter writes these). */
export type OutputDtype = 'float32' | 'float16';
/** The checkpoint's element types, as safetensors names them (recorded, not read back). */
export type SourceDtype = 'F32' | 'F16' | 'BF16';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'jslm-onnx';
export const MANIFEST_VERSION = 1;

/** Where one weight tensor's bytes are, as ONNX external data (location relative to the folder). */
export interface WeightLocation {
  location: string;
  offset: number;
  length: number;
  /** int4/int8: block-quantized codes; `quantization` says where their scales are. */
  dtype: OutputDtype | QuantizedDtype;
  shape: number[];
  quantization?: BlockQuantization;
}

/** The scheme of a quantized conversion (each quantized tensor's entry repeats what it needs). */
export interface WeightQuantization {
  /** Type of the linear layers' weights (projections and LM head). */
  dtype: QuantizedDtype;
  blockSize: number;
  /** Symmetric: scale = max|w| / qmax per block, no zero points. */
  scheme: 'symmetric';
  scaleDtype: ScaleDtype;
  /** The input embedding's type (it is only gathered from, so it is not quantized). */
  embedding: OutputDtype;
}

export interface ManifestFile {
  path: string;
  size: number;
  sha256: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: typeof MANIFEST_VERSION;
  /** Element type of every weight tensor, except those `quantization` says otherwise of. */
  dtype: OutputDtype;
  /** Present when the linear layers are block-quantized. */
  quantization?: WeightQuantization;
  /** Compute (and KV cache) type the graphs were built for. */
  computeDtype: OutputDtype;
  config: ModelConfig;
  /**
   * Graph files of folders converted before graphs were built at load time; ignored now
   * (graphs are built from `tensors` when the folder is opened, see graphs.ts).
   */
  graphs?: { forward?: string; generate?: string };
  /** Every tensor the forward pass needs, in canonical order. */
  tensors: Record<string, WeightLocation>;
  /** Every file in the folder except manifest.json itself. */
  files: ManifestFile[];
  source: { format: 'safetensors' | 'pytorch'; dtypes: SourceDtype[]; files: string[] };
}

export class ManifestError extends Error {
  override name = 'ManifestError';
}

function isPlainFileName(p: unknown): p is string {
  return (
    typeof p === 'string' &&
    p.length > 0 &&
    p !== '.' &&
    p !== '..' &&
    !p.includes('/') &&
    !p.includes('\\') &&
    p !== MANIFEST_FILE
  );
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Checks a parsed manifest's structure and internal consistency (no file access). */
export function parseManifest(raw: unknown, where = MANIFEST_FILE): Manifest {
  const fail = (what: string): never => {
    throw new ManifestError(`${where}: ${what}`);
  };
  if (typeof raw !== 'object' || raw === null) return fail('not a JSON object');
  const m = raw as Partial<Manifest>;
  if (m.format !== MANIFEST_FORMAT)
    fail(`format is ${JSON.stringify(m.format)}, expected ${MANIFEST_FORMAT}`);
  if (m.formatVersion !== MANIFEST_VERSION) {
    fail(`formatVersion ${JSON.stringify(m.formatVersion)} is not supported (expected ${MANIFEST_VERSION})`);
  }
  if (m.dtype !== 'float32' && m.dtype !== 'float16') fail(`unknown dtype ${JSON.stringify(m.dtype)}`);
  if (m.computeDtype !== 'float32' && m.computeDtype !== 'float16') {
    fail(`unknown computeDtype ${JSON.stringify(m.computeDtype)}`);
  }
  if (typeof m.config !== 'object' || m.config === null) fail('missing config');
  if (!Array.isArray(m.files)) return fail('missing files');
  const sizes = new Map<string, number>();
  for (const f of m.files) {
    if (!isPlainFileName(f?.path)) fail(`invalid file path ${JSON.stringify(f?.path)}`);
    if (!isCount(f.size) || typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256)) {
      fail(`bad size or sha256 for ${f.path}`);
    }
    if (sizes.has(f.path)) fail(`${f.path} listed twice`);
    sizes.set(f.path, f.size);
  }
  const graphs = m.graphs ?? {};
  for (const [kind, file] of Object.entries(graphs)) {
    if (!sizes.has(file as string))
      fail(`graph '${kind}' file ${JSON.stringify(file)} is not listed in files`);
  }
  if (typeof m.tensors !== 'object' || m.tensors === null) return fail('missing tensors');
  for (const [name, t] of Object.entries(m.tensors)) {
    const size = sizes.get(t?.location);
    if (size === undefined)
      fail(`tensor '${name}' is in ${JSON.stringify(t?.location)}, which is not listed`);
    if (!isCount(t.offset) || !isCount(t.length) || t.offset + t.length > size!) {
      fail(`tensor '${name}' lies outside ${t.location}`);
    }
    if (isQuantizedDtype(t.dtype)) {
      const q = t.quantization;
      if (!q || !BLOCK_SIZES.includes(q.blockSize))
        fail(`tensor '${name}' (${t.dtype}) has no valid block size`);
      const scales = q!.scales;
      const scalesSize = sizes.get(scales?.location);
      if (scalesSize === undefined) fail(`scales of '${name}' are in a file that is not listed`);
      if (!isCount(scales.offset) || !isCount(scales.length) || scales.offset + scales.length > scalesSize!) {
        fail(`scales of '${name}' lie outside ${scales.location}`);
      }
      if (scales.dtype !== 'float32' && scales.dtype !== 'float16') {
        fail(`scales of '${name}' have unknown dtype ${JSON.stringify(scales.dtype)}`);
      }
    } else if (t.dtype !== 'float32' && t.dtype !== 'float16') {
      fail(`tensor '${name}' has unknown dtype ${JSON.stringify(t.dtype)}`);
    }
  }
  const q = m.quantization;
  if (q !== undefined && (!isQuantizedDtype(q?.dtype) || !BLOCK_SIZES.includes(q.blockSize))) {
    fail(`unknown quantization ${JSON.stringify(q)}`);
  }
  return m as Manifest;
}

export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new ManifestError(`${path}: not found`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ManifestError(`${path}: not valid JSON`);
  }
  return parseManifest(raw, path);
}

/** Checks one listed file's size and, unless `hashes` is false, its SHA-256. */
export async function verifyFile(
  dir: string,
  file: ManifestFile,
  options: { hashes?: boolean; onBytes?: (n: number) => void } = {},
): Promise<void> {
  const path = join(dir, file.path);
  const s = await stat(path).catch(() => null);
  if (!s?.isFile()) throw new ManifestError(`${path}: missing`);
  if (s.size !== file.size) throw new ManifestError(`${path}: size ${s.size}, manifest says ${file.size}`);
  if (options.hashes === false) return;
  const digest = await sha256File(path, options.onBytes);
  if (digest !== file.sha256)
    throw new ManifestError(`${path}: SHA-256 ${digest} does not match the manifest`);
}

/**
 * Checks that a model folder holds every file its manifest lists, with the right size and
 * (by default) SHA-256. Throws ManifestError naming the first bad file; returns the manifest.
 */
export async function verifyManifest(
  dir: string,
  options: { hashes?: boolean; onProgress?: (done: number, total: number) => void } = {},
): Promise<Manifest> {
  const manifest = await readManifest(dir);
  const total = manifest.files.reduce((a, f) => a + f.size, 0);
  let done = 0;
  for (const file of manifest.files) {
    await verifyFile(dir, file, {
      hashes: options.hashes,
      onBytes: (n) => {
        done += n;
        options.onProgress?.(done, total);
      },
    });
  }
  return manifest;
}
