// Converts a Hugging Face checkpoint folder into the folder the GPU function serves:
// config.json, the weight data and manifest.json (layout in ../model-folder/manifest.ts). The
// ONNX graphs are not part of it: the GPU function builds them when it opens the folder.
// Everything is written into a temporary folder beside the output, renamed into place only
// when complete, and removed on any failure, so a failed run leaves no partial output.

import { chmod, copyFile, mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { type Checkpoint, openCheckpoint } from '../checkpoint/open.ts';
import type { TensorDtype } from '../checkpoint/tensor-ref.ts';
import type { ComputeDtype } from '../model/decoder.ts';
import { BLOCK_SIZES, QUANTIZED_BITS, type QuantizedDtype } from '../model/quantized-linear.ts';
import { sha256File } from '../model-folder/hash.ts';
import {
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  type Manifest,
  type ManifestFile,
  type WeightLocation,
} from '../model-folder/manifest.ts';
import { placeFile } from './copy-weights.ts';
import { type OutputDtype, SOURCE_DTYPE_OF } from './dtype.ts';
import { DEFAULT_BLOCK_SIZE, isQuantizedTensor } from './quantize.ts';
import { streamWeights, type TensorOutput } from './stream-weights.ts';

export interface ConvertProgress {
  stage: 'weights' | 'done';
  /** Bytes done so far in this stage, out of `total`. */
  done: number;
  total: number;
  /** The tensor or file being worked on. */
  item?: string;
}

export interface ConvertOptions {
  checkpointDir: string;
  outDir: string;
  /** Element type of the output weights; default float32. */
  dtype?: OutputDtype;
  /** Compute type the graphs are built for; default the weight dtype (float16 for the GPU). */
  computeDtype?: ComputeDtype;
  /** Hugging Face weight variant ('fp16' reads model.fp16.safetensors). */
  variant?: string;
  /**
   * Block-quantize the linear layers (projections and LM head) to int4 or int8 for
   * MatMulNBits; the input embedding becomes float16, the rest `dtype`. Default: none.
   */
  quantize?: { dtype: QuantizedDtype; blockSize?: number };
  /** Replace an existing converted folder at outDir. */
  overwrite?: boolean;
  onProgress?: (p: ConvertProgress) => void;
  signal?: AbortSignal;
}

export interface ConvertResult {
  outDir: string;
  manifest: Manifest;
  /** How the weights got there: source files linked, copied, or converted (and quantized) into weights.bin. */
  weights: 'linked' | 'copied' | 'converted';
}

export class ConvertError extends Error {
  override name = 'ConvertError';
}

async function pathExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function checkOutDir(outDir: string, checkpointDir: string, overwrite: boolean): Promise<void> {
  const rel = relative(outDir, checkpointDir);
  if (rel === '' || !rel.startsWith('..')) {
    throw new ConvertError(`${outDir}: the output folder must not be the checkpoint folder or contain it`);
  }
  if (!(await pathExists(outDir))) return;
  if (!overwrite) throw new ConvertError(`${outDir}: already exists (use --force to replace it)`);
  if (!(await pathExists(join(outDir, MANIFEST_FILE)))) {
    throw new ConvertError(
      `${outDir}: refusing to replace a folder that is not a converted model (no ${MANIFEST_FILE})`,
    );
  }
}

/** Whether the source files can be used as they are: safetensors already holding the target dtype. */
function canUseSourceFiles(ckpt: Checkpoint, dtype: OutputDtype): boolean {
  if (ckpt.format !== 'safetensors') return false;
  return [...ckpt.tensors.values()].every((t) => t.dtype === SOURCE_DTYPE_OF[dtype]);
}

/** The manifest's record of a quantized conversion, or undefined; checks the options. */
function quantizationOf(options: ConvertOptions, computeDtype: ComputeDtype): Manifest['quantization'] {
  if (!options.quantize) return undefined;
  const { dtype } = options.quantize;
  const blockSize = options.quantize.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!(dtype in QUANTIZED_BITS)) throw new ConvertError(`unknown quantized type '${dtype}' (int4 or int8)`);
  if (!BLOCK_SIZES.includes(blockSize)) {
    throw new ConvertError(`block size ${blockSize} is not supported (${BLOCK_SIZES.join(', ')})`);
  }
  // Scales are read in the compute type (MatMulNBits wants them so), so they are stored in it.
  return { dtype, blockSize, scheme: 'symmetric', scaleDtype: computeDtype, embedding: 'float16' };
}

export async function convertCheckpoint(options: ConvertOptions): Promise<ConvertResult> {
  const dtype = options.dtype ?? 'float32';
  const computeDtype = options.computeDtype ?? dtype;
  const quantization = quantizationOf(options, computeDtype);
  const outDir = resolve(options.outDir);
  const report = options.onProgress ?? (() => {});
  const { signal } = options;

  const ckpt = await openCheckpoint(options.checkpointDir, { variant: options.variant });
  await checkOutDir(outDir, ckpt.dir, options.overwrite === true);
  await mkdir(dirname(outDir), { recursive: true });
  const tmp = await mkdtemp(join(dirname(outDir), `.${basename(outDir)}.partial-`));
  try {
    await chmod(tmp, 0o755); // mkdtemp makes it private; the result is an ordinary folder
    const files: ManifestFile[] = [];
    await copyFile(ckpt.configPath, join(tmp, 'config.json'));
    files.push({ path: 'config.json', ...(await describe(join(tmp, 'config.json'))) });

    let tensors: Record<string, WeightLocation>;
    let weights: ConvertResult['weights'];
    if (!quantization && canUseSourceFiles(ckpt, dtype)) {
      const used = [...new Set([...ckpt.tensors.values()].map((t) => t.file))];
      const sizes = await Promise.all(used.map(async (f) => (await stat(f)).size));
      const total = sizes.reduce((a, b) => a + b, 0);
      let done = 0;
      let allLinked = true;
      for (const file of used) {
        const name = basename(file);
        const placed = await placeFile(
          file,
          join(tmp, name),
          (n) => {
            done += n;
            report({ stage: 'weights', done, total, item: name });
          },
          signal,
        );
        allLinked &&= placed.linked;
        files.push({ path: name, size: placed.size, sha256: placed.sha256 });
      }
      tensors = {};
      for (const t of ckpt.tensors.values()) {
        tensors[t.name] = {
          location: basename(t.file),
          offset: t.offset,
          length: t.byteLength,
          dtype,
          shape: [...t.shape],
        };
      }
      weights = allLinked ? 'linked' : 'copied';
    } else {
      const total = [...ckpt.tensors.values()].reduce((a, t) => a + t.byteLength, 0);
      let done = 0;
      const q = quantization;
      const outputOf = (t: { name: string }): TensorOutput | undefined => {
        if (!q) return undefined;
        if (t.name === 'transformer.embed_in.weight') return { dtype: q.embedding };
        if (!isQuantizedTensor(t.name)) return undefined;
        const bits = QUANTIZED_BITS[q.dtype];
        return { quantize: { bits, blockSize: q.blockSize, scaleDtype: q.scaleDtype } };
      };
      const streamed = await streamWeights({
        tensors: ckpt.tensors,
        dir: tmp,
        dtype,
        outputOf,
        signal,
        onBytes: (n, tensor) => {
          done += n;
          report({ stage: 'weights', done, total, item: tensor });
        },
      });
      tensors = streamed.locations;
      files.push(...streamed.files);
      weights = 'converted';
    }

    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      formatVersion: MANIFEST_VERSION,
      dtype,
      ...(quantization ? { quantization } : {}),
      computeDtype,
      config: ckpt.config,
      tensors,
      files,
      source: {
        format: ckpt.format,
        dtypes: [...new Set<TensorDtype>([...ckpt.tensors.values()].map((t) => t.dtype))],
        files: ckpt.files.map((f) => basename(f)),
      },
    };
    await writeFile(join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);

    signal?.throwIfAborted();
    await moveIntoPlace(tmp, outDir, options.overwrite === true);
    report({ stage: 'done', done: 1, total: 1 });
    return { outDir, manifest, weights };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

async function describe(path: string): Promise<{ size: number; sha256: string }> {
  return { size: (await stat(path)).size, sha256: await sha256File(path) };
}

async function moveIntoPlace(tmp: string, outDir: string, overwrite: boolean): Promise<void> {
  if (overwrite && (await pathExists(outDir))) {
    const old = `${tmp}-old`;
    await rename(outDir, old);
    await rename(tmp, outDir);
    await rm(old, { recursive: true, force: true });
    return;
  }
  try {
    await rename(tmp, outDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST')
      throw new ConvertError(`${outDir}: appeared while converting`);
    throw err;
  }
}
