// The whole 2048-position window (golden long_sequence). h128 runs it as one pass; tiny's
// 65,536-wide logits would take 512 MiB at once, so it runs as chunked prefill through the
// KV cache (which is also what the engine does with long prompts).

import { describe, expect, it } from 'vitest';
import type { KvCache } from '../../../gpu-function/src/model/forward-session.ts';
import {
  type FixtureName,
  hasFixtures,
  hiddenError,
  lastRowErrors,
  loadGolden,
  logitsAtIdsError,
  openFixtureModel,
  rowStatsErrors,
} from './fixture-model.ts';

const fixturesPresent = await hasFixtures();

const CASES: { fixture: FixtureName; chunk: number }[] = [
  { fixture: 'h128-seed4321', chunk: 2048 },
  { fixture: 'tiny-seed1234', chunk: 512 },
];

describe.skipIf(!fixturesPresent)('forward graph: 2048-token window', () => {
  it.each(CASES)('$fixture in chunks of $chunk', async ({ fixture, chunk }) => {
    const golden = await loadGolden(fixture);
    const block = golden.long_sequence;
    const model = await openFixtureModel(fixture, { finalHidden: true });
    try {
      const { vocabSize: V, hiddenSize: H } = model.session.config;
      const T = block.input_ids.length;
      expect(T).toBe(2048);
      // Keep only what the golden checks: row statistics for all rows, full rows where sampled.
      const sampled = new Set(block.sampled_positions);
      const kept: Float32Array[] = [];
      const keptRows: number[] = [];
      const hidden: number[][] = [];
      const stats = { stats: 0, argmaxMismatches: 0 };
      let cache: KvCache | undefined;
      for (let start = 0; start < T; start += chunk) {
        const end = Math.min(T, start + chunk);
        const out = await model.session.run({
          inputIds: [block.input_ids.slice(start, end)],
          positionIds: [block.position_ids.slice(start, end)],
          ...(cache ? { past: cache } : {}),
        });
        cache = out.present;
        const e = rowStatsErrors(out.logits, V, block, start);
        stats.stats = Math.max(stats.stats, e.stats);
        stats.argmaxMismatches += e.argmaxMismatches;
        const h = out.finalHidden?.data as Float32Array;
        for (let r = start; r < end; r++) {
          if (!sampled.has(r)) continue;
          kept.push(out.logits.slice((r - start) * V, (r - start + 1) * V));
          keptRows.push(r);
          hidden.push(Array.from(h.subarray((r - start) * H, (r - start + 1) * H)));
        }
      }
      expect(keptRows).toEqual(block.sampled_positions);
      const sampledLogits = new Float32Array(kept.length * V);
      for (const [i, r] of kept.entries()) sampledLogits.set(r, i * V);
      // Sampled rows: logits at ids; row 2047 (the last kept) also against last_logits_full / last_top5.
      const atIds = logitsAtIdsError(sampledLogits, V, golden.logit_ids, block.logits_at_ids);
      const last = lastRowErrors(kept[kept.length - 1] as Float32Array, block);
      const e = { logits: Math.max(atIds, last.logits), top5: last.top5 };
      const hiddenErr = hiddenError(Float32Array.from(hidden.flat()), H, block.final_hidden);
      console.info(
        `${fixture} long_sequence: logits ${e.logits.toExponential(2)} stats ${stats.stats.toExponential(2)} hidden ${hiddenErr.toExponential(2)}`,
      );
      expect(e.logits).toBeLessThanOrEqual(1e-5);
      expect(e.top5).toBeLessThanOrEqual(1e-5);
      expect(stats.stats).toBeLessThanOrEqual(1e-5);
      expect(stats.argmaxMismatches).toBe(0);
      expect(hiddenErr).toBeLessThanOrEqual(1e-4);
    } finally {
      await model.dispose();
    }
  });
});
