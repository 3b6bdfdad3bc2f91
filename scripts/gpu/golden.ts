// The fixtures' golden.json (see ../shared/fixtures/model/README.md) and how far a run's logits
// are from it. Tolerances are the ones the CPU tests use: float32 compute 1e-5 on logits and
// row statistics, argmax exact where the golden margin exceeds 1e-4; float16 compute against
// the fp16_weights_upcast entry 5e-3, argmax where the margin exceeds 0.02.

export interface GoldenBlock {
  input_ids?: number[];
  position_ids?: number[];
  logits_at_ids: number[][];
  argmax: number[];
  margin: number[];
  max: number[];
  logsumexp: number[];
  mean: number[];
  std: number[];
  last_logits_full?: number[];
  sampled_positions?: number[];
}

export interface Golden {
  weights: Record<string, string>;
  logit_ids: number[];
  sequences: Record<'len1' | 'len7' | 'len40', GoldenBlock>;
  incremental: GoldenBlock & { prefix_length: number; positions: number[] };
  greedy: {
    prompt_ids: number[];
    new_tokens: number[];
    steps: { argmax: number; max: number; margin: number }[];
  };
  position_offset: GoldenBlock;
  position_gapped: GoldenBlock;
  long_sequence: GoldenBlock & { sampled_positions: number[] };
  fp16_weights_upcast: GoldenBlock;
}

export const FP32 = { logits: 1e-5, stats: 1e-5, argmaxMargin: 1e-4 } as const;
export const FP16 = { logits: 5e-3, stats: 5e-3, argmaxMargin: 0.02, stepVsFull: 1e-3 } as const;
export type Tolerance = { logits: number; stats: number; argmaxMargin: number };

export interface RowStats {
  argmax: number;
  max: number;
  /** The top logit minus the second. */
  margin: number;
  logsumexp: number;
  mean: number;
  std: number;
}

/** Statistics of one row of logits, as golden.json records them. */
export function rowStats(row: Float32Array): RowStats {
  let best = Number.NEGATIVE_INFINITY;
  let second = Number.NEGATIVE_INFINITY;
  let argmax = -1;
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i] as number;
    sum += v;
    if (v > best) {
      second = best;
      best = v;
      argmax = i;
    } else if (v > second) second = v;
  }
  const mean = sum / row.length;
  let sq = 0;
  let exp = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i] as number;
    sq += (v - mean) ** 2;
    exp += Math.exp(v - best);
  }
  return {
    argmax,
    max: best,
    margin: best - second,
    logsumexp: best + Math.log(exp),
    mean,
    std: Math.sqrt(sq / row.length),
  };
}

export interface BlockErrors {
  /** Max abs logit error at the golden's ids (and the full last row where the golden has it). */
  logits: number;
  /** Max abs error of logsumexp, max, mean and std. */
  stats: number;
  /** Rows whose argmax differs where the golden margin exceeds the tolerance's. */
  argmaxMismatches: number;
  rows: number;
  /** NaN or infinite logits: never a pass. */
  nonFinite: number;
}

/**
 * Compares logits rows (row r of `logits`, [rows, vocab] row-major) with golden rows
 * `goldenRows[r]` (default r) of `block`.
 */
export function compareRows(
  logits: Float32Array,
  vocab: number,
  logitIds: number[],
  block: GoldenBlock,
  tolerance: Tolerance,
  goldenRows?: number[],
): BlockErrors {
  const rows = logits.length / vocab;
  const e: BlockErrors = { logits: 0, stats: 0, argmaxMismatches: 0, rows, nonFinite: 0 };
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    for (const v of row) if (!Number.isFinite(v)) e.nonFinite++;
    const g = goldenRows ? (goldenRows[r] as number) : r;
    const want = block.logits_at_ids[g];
    want?.forEach((v, j) => {
      e.logits = Math.max(e.logits, Math.abs((row[logitIds[j] as number] as number) - v));
    });
    const s = rowStats(row);
    for (const k of ['logsumexp', 'max', 'mean', 'std'] as const) {
      e.stats = Math.max(e.stats, Math.abs(s[k] - (block[k][g] as number)));
    }
    if ((block.margin[g] as number) > tolerance.argmaxMargin && s.argmax !== block.argmax[g]) {
      e.argmaxMismatches++;
    }
  }
  const full = block.last_logits_full;
  if (full && !goldenRows) {
    const last = logits.subarray((rows - 1) * vocab);
    full.forEach((v, j) => {
      e.logits = Math.max(e.logits, Math.abs((last[j] as number) - v));
    });
  }
  return e;
}

export function withinTolerance(e: BlockErrors, t: Tolerance): boolean {
  return e.nonFinite === 0 && e.logits <= t.logits && e.stats <= t.stats && e.argmaxMismatches === 0;
}

export interface GreedyVerdict {
  ok: boolean;
  /** Leading tokens equal to the golden continuation. */
  matched: number;
  /** Leading golden steps whose margin exceeds the tolerance's (what must match). */
  required: number;
  tokens: number[];
}

/**
 * A greedy continuation against golden.greedy: every token must match up to the first golden
 * step that is too close to call at this precision (all 20 in float32).
 */
export function judgeGreedy(tokens: number[], greedy: Golden['greedy'], argmaxMargin: number): GreedyVerdict {
  let matched = 0;
  while (matched < tokens.length && tokens[matched] === greedy.new_tokens[matched]) matched++;
  let required = 0;
  while (required < greedy.steps.length && (greedy.steps[required]?.margin as number) > argmaxMargin)
    required++;
  const ok = tokens.length === greedy.new_tokens.length && matched >= required;
  return { ok, matched, required, tokens };
}
