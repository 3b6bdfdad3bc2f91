// Shared by the forward-pass tests: builds forward.onnx for a fixture checkpoint in a
// git-ignored folder (weights hard-linked beside it, as external data must sit in the model
// folder), opens it, and measures logits against golden.json blocks.

import { copyFile, link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readSafetensorsIndex } from '../../../gpu-function/src/checkpoint/safetensors.ts';
import { parseModelConfig } from '../../../gpu-function/src/model/config.ts';
import type { WeightDtype, WeightLocation } from '../../../gpu-function/src/model/decoder.ts';
import {
  buildForwardModel,
  type ForwardModelOptions,
} from '../../../gpu-function/src/model/forward-model.ts';
import { type ForwardSession, openForwardSession } from '../../../gpu-function/src/model/forward-session.ts';
import { encodeModel } from '../../../gpu-function/src/model/onnx/index.ts';
import { type RowStats, rowStats } from '../../../scripts/gpu/golden.ts';

export const FIXTURES = path.resolve(process.cwd(), '../shared/fixtures/model');
export const FIXTURE_NAMES = ['tiny-seed1234', 'h128-seed4321'] as const;
export type FixtureName = (typeof FIXTURE_NAMES)[number];

export async function hasFixtures(): Promise<boolean> {
  try {
    await readFile(path.join(FIXTURES, 'tiny-seed1234', 'config.json'));
    await readFile(path.join(FIXTURES, 'h128-seed4321', 'config.json'));
    return true;
  } catch {
    return false;
  }
}

/** One row-block of golden.json (see ../shared/fixtures/model/README.md). */
export interface GoldenBlock {
  input_ids: number[];
  position_ids: number[];
  logits_at_ids: number[][];
  argmax: number[];
  margin: number[];
  max: number[];
  logsumexp: number[];
  mean: number[];
  std: number[];
  final_hidden: number[][];
  last_logits_full?: number[];
  last_top5?: { ids: number[]; log_softmax: number[] };
  sampled_positions?: number[];
}

export interface Golden {
  logit_ids: number[];
  sequences: Record<'len1' | 'len7' | 'len40', GoldenBlock>;
  incremental: Omit<GoldenBlock, 'input_ids' | 'position_ids'> & {
    prefix_length: number;
    positions: number[];
  };
  greedy: { prompt_ids: number[]; num_new_tokens: number; new_tokens: number[] };
  position_offset: GoldenBlock;
  position_gapped: GoldenBlock;
  long_sequence: GoldenBlock & { sampled_positions: number[] };
  fp16_weights_upcast: GoldenBlock;
}

const goldens = new Map<string, Promise<Golden>>();
export function loadGolden(fixture: FixtureName): Promise<Golden> {
  let g = goldens.get(fixture);
  if (!g) {
    g = readFile(path.join(FIXTURES, fixture, 'golden.json'), 'utf8').then((t) => JSON.parse(t) as Golden);
    goldens.set(fixture, g);
  }
  return g;
}

const SAFETENSORS_DTYPE: Record<string, WeightDtype> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

export interface FixtureModel {
  dir: string;
  session: ForwardSession;
  dispose(): Promise<void>;
}

/** A converted-model-like folder: config.json, the weights file and forward.onnx pointing into it. */
export async function writeFixtureModelDir(
  fixture: FixtureName,
  options: ForwardModelOptions & { weightsFile?: string } = {},
): Promise<string> {
  const root = path.resolve(process.cwd(), '.cache/test-models');
  await mkdir(root, { recursive: true });
  const dir = await mkdtemp(path.join(root, `${fixture}-`));
  const weightsFile = options.weightsFile ?? 'model.safetensors';
  const source = path.join(FIXTURES, fixture);
  await link(path.join(source, weightsFile), path.join(dir, weightsFile)).catch(() =>
    copyFile(path.join(source, weightsFile), path.join(dir, weightsFile)),
  );
  await copyFile(path.join(source, 'config.json'), path.join(dir, 'config.json'));
  const config = parseModelConfig(JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')));
  const weights = new Map<string, WeightLocation>();
  for (const ref of await readSafetensorsIndex(path.join(dir, weightsFile))) {
    const dtype = SAFETENSORS_DTYPE[ref.dtype] as WeightDtype;
    weights.set(ref.name, { location: weightsFile, offset: ref.offset, length: ref.byteLength, dtype });
  }
  await writeFile(path.join(dir, 'forward.onnx'), encodeModel(buildForwardModel(config, weights, options)));
  return dir;
}

export async function openFixtureModel(
  fixture: FixtureName,
  options: ForwardModelOptions & { weightsFile?: string } = {},
): Promise<FixtureModel> {
  const dir = await writeFixtureModelDir(fixture, options);
  const session = await openForwardSession(dir);
  return {
    dir,
    session,
    async dispose() {
      await session.release();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// One implementation of the golden row statistics, shared with the GPU proof's checks.
export { type RowStats, rowStats };

export interface BlockErrors {
  /** Max abs logit error at the golden's logit ids (and last_logits_full when present). */
  logits: number;
  /** Max abs over logsumexp, max, mean, std. */
  stats: number;
  /** Rows whose argmax differs where the golden margin exceeds 1e-4. */
  argmaxMismatches: number;
  /** Max abs error of the top-5 log-softmax values (Infinity when the ids differ). */
  top5: number;
}

type StatFields = Pick<GoldenBlock, 'argmax' | 'margin' | 'max' | 'logsumexp' | 'mean' | 'std'>;

const rowOf = (logits: Float32Array, vocab: number, r: number) => logits.subarray(r * vocab, (r + 1) * vocab);

/** Max abs error at golden.logit_ids; expected[i] is compared with logits row rows[i] (default i). */
export function logitsAtIdsError(
  logits: Float32Array,
  vocab: number,
  logitIds: number[],
  expected: number[][],
  rows?: number[],
): number {
  let m = 0;
  expected.forEach((want, i) => {
    const got = rowOf(logits, vocab, rows ? (rows[i] as number) : i);
    want.forEach((v, j) => {
      m = Math.max(m, Math.abs((got[logitIds[j] as number] as number) - v));
    });
  });
  return m;
}

/** Row statistics of every logits row r against expected row `offset + r`. */
export function rowStatsErrors(
  logits: Float32Array,
  vocab: number,
  expected: StatFields,
  offset = 0,
): { stats: number; argmaxMismatches: number } {
  let stats = 0;
  let argmaxMismatches = 0;
  for (let r = 0; r < logits.length / vocab; r++) {
    const s = rowStats(rowOf(logits, vocab, r));
    const i = offset + r;
    for (const key of ['logsumexp', 'max', 'mean', 'std'] as const) {
      stats = Math.max(stats, Math.abs(s[key] - (expected[key][i] as number)));
    }
    if ((expected.margin[i] as number) > 1e-4 && s.argmax !== expected.argmax[i]) argmaxMismatches++;
  }
  return { stats, argmaxMismatches };
}

/** The last row against last_logits_full and last_top5. */
export function lastRowErrors(
  last: Float32Array,
  block: Pick<GoldenBlock, 'last_logits_full' | 'last_top5'>,
) {
  let logits = 0;
  let top5 = 0;
  block.last_logits_full?.forEach((v, j) => {
    logits = Math.max(logits, Math.abs((last[j] as number) - v));
  });
  if (block.last_top5) {
    const { logsumexp } = rowStats(last);
    const ids = Array.from(last.keys())
      .sort((a, b) => (last[b] as number) - (last[a] as number))
      .slice(0, 5);
    block.last_top5.ids.forEach((id, k) => {
      const want = block.last_top5?.log_softmax[k] as number;
      top5 =
        ids[k] !== id
          ? Number.POSITIVE_INFINITY
          : Math.max(top5, Math.abs((last[id] as number) - logsumexp - want));
    });
  }
  return { logits, top5 };
}

/** All checks of one golden block whose rows are exactly the rows of `logits`. */
export function compareBlock(
  logits: Float32Array,
  vocab: number,
  golden: Golden,
  block: Omit<GoldenBlock, 'input_ids' | 'position_ids'>,
): BlockErrors {
  const rows = logits.length / vocab;
  const atIds = logitsAtIdsError(logits, vocab, golden.logit_ids, block.logits_at_ids);
  const { stats, argmaxMismatches } = rowStatsErrors(logits, vocab, block);
  const last = lastRowErrors(rowOf(logits, vocab, rows - 1), block);
  return { logits: Math.max(atIds, last.logits), stats, argmaxMismatches, top5: last.top5 };
}

/** Max abs difference between two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

/** final_hidden rows against the golden (values up to about 4; tolerance 1e-4). */
export function hiddenError(
  hidden: Float32Array,
  width: number,
  expected: number[][],
  rows?: number[],
): number {
  let m = 0;
  expected.forEach((want, i) => {
    const r = rows ? (rows[i] as number) : i;
    want.forEach((v, j) => {
      m = Math.max(m, Math.abs((hidden[r * width + j] as number) - v));
    });
  });
  return m;
}
