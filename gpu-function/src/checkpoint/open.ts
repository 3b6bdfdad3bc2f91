// Opens a Hugging Face checkpoint folder: config.json plus safetensors or PyTorch .bin
// weights, single file or sharded with an index, as the hub publishes them.

import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { IGNORED_TENSOR, type ModelConfig, ModelConfigError, parseModelConfig } from '../model/config.ts';
import { CheckpointError } from './errors.ts';
import { readSafetensorsIndex } from './safetensors.ts';
import type { TensorRef } from './tensor-ref.ts';
import { readTorchCheckpoint } from './torch-bin.ts';
import { validateTensors } from './validate.ts';

export type CheckpointFormat = 'safetensors' | 'pytorch';

export interface Checkpoint {
  dir: string;
  configPath: string;
  config: ModelConfig;
  rawConfig: Record<string, unknown>;
  format: CheckpointFormat;
  /** Absolute paths of the weight files read. */
  files: string[];
  /** Every tensor the forward pass needs, in expectedTensors() order. */
  tensors: Map<string, TensorRef>;
}

export interface OpenOptions {
  /** Hugging Face weight variant: 'fp16' selects model.fp16.safetensors and the like. */
  variant?: string;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CheckpointError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new CheckpointError(`${path}: not valid JSON`);
  }
}

/** The shard files an index names, checked to be plain file names inside the folder. */
async function shardsOf(indexPath: string): Promise<string[]> {
  const index = (await readJson(indexPath)) as { weight_map?: unknown } | null;
  const map = index?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new CheckpointError(`${indexPath}: no 'weight_map' object`);
  }
  const files = new Set<string>();
  for (const [name, file] of Object.entries(map)) {
    if (typeof file !== 'string' || file !== basename(file) || file === '..' || file === '.') {
      throw new CheckpointError(
        `${indexPath}: tensor '${name}' maps to an invalid file name ${JSON.stringify(file)}`,
      );
    }
    files.add(file);
  }
  if (files.size === 0) throw new CheckpointError(`${indexPath}: 'weight_map' is empty`);
  return [...files];
}

interface WeightFiles {
  format: CheckpointFormat;
  files: string[];
}

async function findWeightFiles(dir: string, variant: string | undefined): Promise<WeightFiles> {
  const v = variant ? `.${variant}` : '';
  const layouts: [CheckpointFormat, string, 'index' | 'single'][] = [
    ['safetensors', `model.safetensors.index${v}.json`, 'index'],
    ['safetensors', `model${v}.safetensors`, 'single'],
    ['pytorch', `pytorch_model.bin.index${v}.json`, 'index'],
    ['pytorch', `pytorch_model${v}.bin`, 'single'],
  ];
  for (const [format, name, kind] of layouts) {
    const path = join(dir, name);
    if (!(await exists(path))) continue;
    const files = kind === 'index' ? (await shardsOf(path)).map((f) => join(dir, f)) : [path];
    for (const f of files) {
      if (!(await exists(f))) throw new CheckpointError(`${path}: shard file ${basename(f)} is missing`);
    }
    return { format, files };
  }
  // A folder with a single, differently named safetensors file is unambiguous.
  const others = (await readdir(dir)).filter((f) => f.endsWith('.safetensors'));
  if (!variant && others.length === 1) return { format: 'safetensors', files: [join(dir, others[0]!)] };
  throw new CheckpointError(
    `${dir}: no weights found (looked for ${layouts.map((l) => l[1]).join(', ')})` +
      (others.length > 1 ? `; found ${others.join(', ')}: choose one with a variant` : ''),
  );
}

/** A published checkpoint names its architecture; one that names none must at least have our model_type. */
function requireArchitecture(raw: unknown): void {
  const r = (raw ?? {}) as Record<string, unknown>;
  if (!Array.isArray(r.architectures) && r.model_type !== 'japanese-stablelm-alpha') {
    throw new ModelConfigError(
      `config.json: unknown architecture (no 'architectures'; model_type ${JSON.stringify(r.model_type)})`,
    );
  }
}

/** Reads config.json and lists every weight tensor's location; validates names and shapes against the config. */
export async function openCheckpoint(dir: string, options: OpenOptions = {}): Promise<Checkpoint> {
  dir = resolve(dir);
  const dirStat = await stat(dir).catch(() => null);
  if (!dirStat?.isDirectory()) throw new CheckpointError(`${dir}: checkpoint folder not found`);
  const configPath = join(dir, 'config.json');
  if (!(await exists(configPath))) throw new CheckpointError(`${dir}: config.json not found`);
  const rawConfig = await readJson(configPath);
  let config: ModelConfig;
  try {
    requireArchitecture(rawConfig);
    config = parseModelConfig(rawConfig);
  } catch (err) {
    if (err instanceof ModelConfigError) throw new CheckpointError(`${dir}/${err.message}`);
    throw err;
  }
  const { format, files } = await findWeightFiles(dir, options.variant);
  const skip = (name: string) => IGNORED_TENSOR.test(name);
  const found: TensorRef[] = [];
  for (const file of files) {
    const refs =
      format === 'safetensors'
        ? await readSafetensorsIndex(file, { skip })
        : await readTorchCheckpoint(file, { skip });
    found.push(...refs);
  }
  const tensors = validateTensors(config, found, dir);
  return {
    dir,
    configPath,
    config,
    rawConfig: rawConfig as Record<string, unknown>,
    format,
    files,
    tensors,
  };
}
