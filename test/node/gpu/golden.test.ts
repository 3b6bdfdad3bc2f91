// The golden comparisons of scripts/gpu (golden.ts) on made-up rows.
import { describe, expect, it } from 'vitest';
import {
  compareRows,
  FP16,
  FP32,
  type GoldenBlock,
  judgeGreedy,
  rowStats,
  withinTolerance,
} from '../../../scripts/gpu/golden.ts';

const V = 4;
const logits = new Float32Array([0.1, 0.5, -0.2, 0.3, 1.0, 0.0, 0.2, 0.1]);
const statsOf = (r: number) => rowStats(logits.subarray(r * V, (r + 1) * V));
const block: GoldenBlock = {
  logits_at_ids: [
    [0.1, 0.3],
    [1.0, 0.1],
  ],
  argmax: [1, 0],
  margin: [0.2, 0.8],
  max: [statsOf(0).max, statsOf(1).max],
  logsumexp: [statsOf(0).logsumexp, statsOf(1).logsumexp],
  mean: [statsOf(0).mean, statsOf(1).mean],
  std: [statsOf(0).std, statsOf(1).std],
};
const ids = [0, 3];

describe('golden comparisons', () => {
  it('finds no error where the rows are the golden ones', () => {
    const e = compareRows(logits, V, ids, block, FP32);
    expect(e.logits).toBeLessThan(1e-7);
    expect(e.stats).toBeLessThan(1e-6);
    expect(e).toMatchObject({ argmaxMismatches: 0, rows: 2, nonFinite: 0 });
    expect(withinTolerance(e, FP32)).toBe(true);
  });

  it('measures logit errors, a flipped argmax and non-finite values', () => {
    const off = logits.slice();
    off[3] = 0.3 + 2e-5;
    expect(compareRows(off, V, ids, block, FP32).logits).toBeCloseTo(2e-5, 7);
    expect(withinTolerance(compareRows(off, V, ids, block, FP32), FP32)).toBe(false);
    expect(withinTolerance(compareRows(off, V, ids, block, FP16), FP16)).toBe(true);
    const flipped = logits.slice();
    flipped[2] = 0.9;
    expect(compareRows(flipped, V, ids, block, FP32).argmaxMismatches).toBe(1);
    const nan = logits.slice();
    nan[5] = Number.NaN;
    const e = compareRows(nan, V, ids, block, FP16);
    expect(e.nonFinite).toBe(1);
    expect(withinTolerance(e, FP16)).toBe(false);
  });

  it('compares picked rows against chosen golden rows', () => {
    const second = logits.slice(V);
    expect(compareRows(second, V, ids, block, FP32, [1]).logits).toBeLessThan(1e-7);
    expect(compareRows(second, V, ids, block, FP32, [0]).argmaxMismatches).toBe(1);
  });

  it('requires greedy tokens up to the first step too close to call', () => {
    const greedy = {
      prompt_ids: [1, 2],
      new_tokens: [5, 6, 7, 8],
      steps: [0.5, 0.3, 0.01, 0.4].map((margin) => ({ argmax: 0, max: 0, margin })),
    };
    expect(judgeGreedy([5, 6, 7, 8], greedy, FP32.argmaxMargin)).toMatchObject({
      ok: true,
      matched: 4,
      required: 4,
    });
    expect(judgeGreedy([5, 6, 9, 9], greedy, FP32.argmaxMargin).ok).toBe(false);
    // float16: step 3 has margin 0.01 < 0.02, so only the first two must match.
    expect(judgeGreedy([5, 6, 9, 9], greedy, FP16.argmaxMargin)).toMatchObject({
      ok: true,
      matched: 2,
      required: 2,
    });
    expect(judgeGreedy([5, 9, 9, 9], greedy, FP16.argmaxMargin).ok).toBe(false);
    expect(judgeGreedy([5, 6], greedy, FP16.argmaxMargin).ok).toBe(false);
  });
});
