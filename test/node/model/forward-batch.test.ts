// Batch > 1: each row of a batch, with its own positions and its own cache history, gives
// the same logits as running it alone.

import { describe, expect, it } from 'vitest';
import type { DecoderOptions } from '../../../gpu-function/src/model/decoder.ts';
import {
  type FixtureName,
  hasFixtures,
  loadGolden,
  logitsAtIdsError,
  maxAbsDiff,
  openFixtureModel,
} from './fixture-model.ts';

const fixturesPresent = await hasFixtures();

const CASES: { fixture: FixtureName; attention: NonNullable<DecoderOptions['attention']> }[] = [
  { fixture: 'h128-seed4321', attention: 'fused' },
  { fixture: 'h128-seed4321', attention: 'standard' },
  { fixture: 'tiny-seed1234', attention: 'fused' },
];

describe.skipIf(!fixturesPresent)('forward graph with batch 2', () => {
  it.each(CASES)(
    '$fixture ($attention attention): rows match single runs and the goldens',
    async ({ fixture, attention }) => {
      const golden = await loadGolden(fixture);
      const model = await openFixtureModel(fixture, { attention });
      try {
        const V = model.session.config.vocabSize;
        const a = golden.position_gapped; // 5 tokens at [0, 7, 300, 1500, 2047]
        const b = golden.sequences.len7;
        const rowA = { ids: a.input_ids, pos: a.position_ids };
        const rowB = { ids: b.input_ids.slice(0, 5), pos: b.position_ids.slice(0, 5) };
        const batch = await model.session.run({
          inputIds: [rowA.ids, rowB.ids],
          positionIds: [rowA.pos, rowB.pos],
        });
        expect(batch.logits.length).toBe(2 * 5 * V);
        const first = batch.logits.subarray(0, 5 * V);
        const second = batch.logits.subarray(5 * V);
        expect(logitsAtIdsError(first, V, golden.logit_ids, a.logits_at_ids)).toBeLessThanOrEqual(1e-5);
        expect(
          logitsAtIdsError(second, V, golden.logit_ids, b.logits_at_ids.slice(0, 5)),
        ).toBeLessThanOrEqual(1e-5);

        // Two cached steps for both rows: row 0 continues at position 100, row 1 at its default 5, 6.
        const stepIds = [[b.input_ids[5] as number], [b.input_ids[5] as number]];
        const s1 = await model.session.run({
          inputIds: stepIds,
          positionIds: [[100], [5]],
          past: batch.present,
        });
        const s2 = await model.session.run({
          inputIds: [[b.input_ids[6] as number], [b.input_ids[6] as number]],
          positionIds: [[101], [6]],
          past: s1.present,
        });
        expect(s2.present[0]?.key.dims[2]).toBe(7);
        // Row 1 is len7's prefix run incrementally: its last rows are len7's rows 5 and 6.
        expect(
          logitsAtIdsError(s1.logits.subarray(V), V, golden.logit_ids, [b.logits_at_ids[5] as number[]]),
        ).toBeLessThanOrEqual(1e-5);
        expect(
          logitsAtIdsError(s2.logits.subarray(V), V, golden.logit_ids, [b.logits_at_ids[6] as number[]]),
        ).toBeLessThanOrEqual(1e-5);
        // Row 0 alone, in one pass, at the same positions.
        const alone = await model.session.run({
          inputIds: [[...rowA.ids, b.input_ids[5] as number, b.input_ids[6] as number]],
          positionIds: [[...rowA.pos, 100, 101]],
        });
        expect(maxAbsDiff(s1.logits.subarray(0, V), alone.logits.subarray(5 * V, 6 * V))).toBeLessThanOrEqual(
          1e-6,
        );
        expect(maxAbsDiff(s2.logits.subarray(0, V), alone.logits.subarray(6 * V, 7 * V))).toBeLessThanOrEqual(
          1e-6,
        );
      } finally {
        await model.dispose();
      }
    },
  );
});
