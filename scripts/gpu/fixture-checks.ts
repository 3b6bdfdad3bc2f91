// Exactness on the golden fixtures: each fixture is converted by the project's converter
// (float32, and float16 from its fp16 weight file), then
//   - forward.onnx logits against golden.json (whole sequences, explicit and gapped positions,
//     a cached prefix plus single steps, the 2048-token window where its logits fit in memory);
//   - the engine's greedy continuation against golden.greedy, alone, chunked, and batched with
//     another request of a different length.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { convertCheckpoint } from '../../gpu-function/src/convert/convert.ts';
import type { ForwardSession } from '../../gpu-function/src/model/forward-session.ts';
import { openEngine, openForward, type Provider } from './engine-usage.ts';
import {
  type BlockErrors,
  compareRows,
  FP16,
  FP32,
  type Golden,
  type GoldenBlock,
  judgeGreedy,
  type Tolerance,
  withinTolerance,
} from './golden.ts';

export type Dtype = 'float32' | 'float16';

export interface Check {
  name: string;
  ok: boolean;
  /** Reported, never a failure (e.g. float32 under TF32). */
  informational?: boolean;
  detail: string;
  data?: unknown;
}

/** Longest logits array (floats) the long-sequence check may fetch: 256 MiB. */
const MAX_LOGITS = 64 * 1024 * 1024;

export async function convertFixture(fixtureDir: string, workDir: string, dtype: Dtype): Promise<string> {
  const outDir = path.join(workDir, `${path.basename(fixtureDir)}-${dtype}`);
  await convertCheckpoint({
    checkpointDir: fixtureDir,
    outDir,
    dtype,
    overwrite: true,
    ...(dtype === 'float16' ? { variant: 'fp16' } : {}),
  });
  return outDir;
}

export function readGolden(fixtureDir: string): Promise<Golden> {
  return readFile(path.join(fixtureDir, 'golden.json'), 'utf8').then((t) => JSON.parse(t) as Golden);
}

const fmt = (e: BlockErrors) =>
  `logits ${e.logits.toExponential(2)}, stats ${e.stats.toExponential(2)}, argmax mismatches ${e.argmaxMismatches}` +
  (e.nonFinite ? `, ${e.nonFinite} non-finite` : '');

function blockCheck(name: string, e: BlockErrors, t: Tolerance, informational: boolean): Check {
  return { name, ok: withinTolerance(e, t), informational, detail: fmt(e), data: e };
}

/** The sampled rows of the 2048-token entry as a block of their own. */
function sampledBlock(b: Golden['long_sequence']): GoldenBlock {
  const pick = (a: number[]) => b.sampled_positions.map((p) => a[p] as number);
  return {
    logits_at_ids: b.logits_at_ids,
    argmax: pick(b.argmax),
    margin: pick(b.margin),
    max: pick(b.max),
    logsumexp: pick(b.logsumexp),
    mean: pick(b.mean),
    std: pick(b.std),
    ...(b.last_logits_full ? { last_logits_full: b.last_logits_full } : {}),
  };
}

async function forwardChecks(
  s: ForwardSession,
  golden: Golden,
  dtype: Dtype,
  tf32: boolean,
  label: string,
): Promise<Check[]> {
  const V = s.config.vocabSize;
  const ids = golden.logit_ids;
  const checks: Check[] = [];
  const runBlock = async (b: GoldenBlock) =>
    (await s.run({ inputIds: [b.input_ids ?? []], positionIds: [b.position_ids ?? []] })).logits;

  if (dtype === 'float16') {
    const b = golden.fp16_weights_upcast;
    const full = await runBlock(b);
    checks.push(blockCheck(`${label} fp16_weights_upcast`, compareRows(full, V, ids, b, FP16), FP16, false));
    // The cache path: a prefix, then the last token as one cached step, equals the full pass.
    const T = b.input_ids?.length ?? 0;
    const prefix = await s.run({ inputIds: [(b.input_ids ?? []).slice(0, T - 1)] });
    const step = await s.run({ inputIds: [(b.input_ids ?? []).slice(T - 1)], past: prefix.present });
    let diff = 0;
    step.logits.forEach((v, j) => {
      diff = Math.max(diff, Math.abs(v - (full[(T - 1) * V + j] as number)));
    });
    checks.push({
      name: `${label} cached step vs full pass`,
      ok: diff <= FP16.stepVsFull,
      detail: `max abs ${diff.toExponential(2)} (<= ${FP16.stepVsFull})`,
    });
    return checks;
  }

  // float32: strict, unless TF32 matrix math is allowed (then the float16 bounds, for information).
  const t: Tolerance = tf32 ? FP16 : FP32;
  for (const key of ['len1', 'len7', 'len40'] as const) {
    const b = golden.sequences[key];
    checks.push(
      blockCheck(`${label} sequences.${key}`, compareRows(await runBlock(b), V, ids, b, t), t, tf32),
    );
  }
  for (const key of ['position_offset', 'position_gapped'] as const) {
    const b = golden[key];
    checks.push(blockCheck(`${label} ${key}`, compareRows(await runBlock(b), V, ids, b, t), t, tf32));
  }
  // incremental: a 33-token prefix (its last row is golden row 0), then 7 cached single steps.
  const inc = golden.incremental;
  const seq = golden.sequences.len40.input_ids ?? [];
  let out = await s.run({ inputIds: [seq.slice(0, inc.prefix_length)] });
  const rows = [out.logits.slice((inc.prefix_length - 1) * V)];
  for (let k = inc.prefix_length; k < seq.length; k++) {
    out = await s.run({ inputIds: [[seq[k] as number]], past: out.present });
    rows.push(out.logits.slice());
  }
  const stacked = new Float32Array(rows.length * V);
  rows.forEach((r, i) => {
    stacked.set(r, i * V);
  });
  checks.push(blockCheck(`${label} incremental`, compareRows(stacked, V, ids, inc, t), t, tf32));

  const long = golden.long_sequence;
  if ((long.input_ids?.length ?? 0) * V <= MAX_LOGITS) {
    const all = await runBlock(long);
    const picked = new Float32Array(long.sampled_positions.length * V);
    long.sampled_positions.forEach((p, i) => {
      picked.set(all.subarray(p * V, (p + 1) * V), i * V);
    });
    const e = compareRows(picked, V, ids, sampledBlock(long), t);
    checks.push(blockCheck(`${label} long_sequence (sampled rows)`, e, t, tf32));
  }
  return checks;
}

async function greedyChecks(
  modelDir: string,
  provider: Provider,
  golden: Golden,
  dtype: Dtype,
  tf32: boolean,
  label: string,
): Promise<Check[]> {
  const margin = dtype === 'float16' || tf32 ? FP16.argmaxMargin : FP32.argmaxMargin;
  const informational = tf32;
  const { prompt_ids: promptIds, new_tokens: expected } = golden.greedy;
  const engine = await openEngine(modelDir, provider);
  const checks: Check[] = [];
  const judge = (name: string, tokens: number[]): Check => {
    const v = judgeGreedy(tokens, golden.greedy, margin);
    return {
      name: `${label} greedy ${name}`,
      ok: v.ok,
      informational,
      detail: `${v.matched}/${expected.length} tokens match (first ${v.required} must)`,
      data: v,
    };
  };
  try {
    checks.push({
      name: `${label} engine provider`,
      ok: engine.provider === provider,
      detail: `engine opened on ${engine.provider}, cache ${engine.dtype}`,
    });
    const req = { promptIds, maxNewTokens: expected.length, temperature: 0 };
    const alone = await engine.generate(req);
    checks.push(judge('(one request)', alone.ids));
    checks.push(judge('(chunks of 3 steps)', (await engine.generate({ ...req, maxChunk: 3 })).ids));
    // Batched with a shorter prompt: padding and per-row positions must not change its tokens.
    const [a, b] = await Promise.all([
      engine.generate(req),
      engine.generate({ ...req, promptIds: promptIds.slice(0, 5).reverse() }),
    ]);
    checks.push(judge('(batched with another prompt)', a.ids));
    checks.push({
      name: `${label} greedy batched equals alone`,
      ok: a.ids.join() === alone.ids.join() && b.ids.length === expected.length,
      informational,
      detail: a.ids.join() === alone.ids.join() ? 'same tokens' : `alone ${alone.ids} vs batched ${a.ids}`,
    });
  } finally {
    await engine.close();
  }
  return checks;
}

export interface FixtureRunOptions {
  provider: Provider;
  fixtureDir: string;
  workDir: string;
  dtype: Dtype;
  /** Float32 matrix products may use TF32 (the CUDA provider's default): bounds become informational. */
  tf32?: boolean;
}

export async function checkFixture(o: FixtureRunOptions): Promise<{ modelDir: string; checks: Check[] }> {
  const golden = await readGolden(o.fixtureDir);
  const modelDir = await convertFixture(o.fixtureDir, o.workDir, o.dtype);
  const label = `${path.basename(o.fixtureDir)} ${o.dtype}${o.tf32 ? ' (tf32)' : ''}`;
  const session = await openForward(modelDir, o.provider);
  let checks: Check[];
  try {
    checks = await forwardChecks(session, golden, o.dtype, o.tf32 === true, label);
  } finally {
    await session.release();
  }
  checks.push(...(await greedyChecks(modelDir, o.provider, golden, o.dtype, o.tf32 === true, label)));
  return { modelDir, checks };
}
