// Rows of different lengths in one batch: left padding plus an attention mask gives each row
// exactly the logits it gets alone (the golden ones), in the prompt pass and in cached steps.

import { describe, expect, it } from 'vitest';
import type { DecoderOptions } from '../../../gpu-function/src/model/decoder.ts';
import {
  type FixtureName,
  hasFixtures,
  loadGolden,
  logitsAtIdsError,
  openFixtureModel,
} from './fixture-model.ts';

const fixturesPresent = await hasFixtures();

const CASES: { fixture: FixtureName; attention: NonNullable<DecoderOptions['attention']> }[] = [
  { fixture: 'h128-seed4321', attention: 'fused' },
  { fixture: 'h128-seed4321', attention: 'standard' },
  { fixture: 'tiny-seed1234', attention: 'fused' },
  { fixture: 'tiny-seed1234', attention: 'standard' },
];

describe.skipIf(!fixturesPresent)('forward graph with padded rows', () => {
  it.each(CASES)(
    '$fixture ($attention attention): padded rows match the goldens',
    async ({ fixture, attention }) => {
      const golden = await loadGolden(fixture);
      const model = await openFixtureModel(fixture, { attention, attentionMask: true });
      try {
        const V = model.session.config.vocabSize;
        const full = golden.sequences.len7; // 7 tokens at 0..6
        const gapped = golden.position_gapped; // 5 tokens at [0, 7, 300, 1500, 2047]
        const a = { ids: full.input_ids.slice(0, 5), pos: full.position_ids.slice(0, 5) };
        const b = { ids: gapped.input_ids.slice(0, 3), pos: gapped.position_ids.slice(0, 3) };
        // Row b is left-padded by two entries (any id, any valid position, mask 0).
        const batch = await model.session.run({
          inputIds: [a.ids, [9, 9, ...b.ids]],
          positionIds: [a.pos, [0, 0, ...b.pos]],
          attentionMask: [
            [1, 1, 1, 1, 1],
            [0, 0, 1, 1, 1],
          ],
        });
        const rowsA = batch.logits.subarray(0, 5 * V);
        const rowsB = batch.logits.subarray(7 * V, 10 * V);
        expect(batch.logits.every(Number.isFinite)).toBe(true);
        expect(
          logitsAtIdsError(rowsA, V, golden.logit_ids, full.logits_at_ids.slice(0, 5)),
        ).toBeLessThanOrEqual(1e-5);
        expect(
          logitsAtIdsError(rowsB, V, golden.logit_ids, gapped.logits_at_ids.slice(0, 3)),
        ).toBeLessThanOrEqual(1e-5);

        // Two cached steps: the padding stays masked in the cache.
        let past = batch.present;
        for (let step = 0; step < 2; step++) {
          const s = 5 + step;
          const out = await model.session.run({
            inputIds: [[full.input_ids[s] as number], [gapped.input_ids[3 + step] as number]],
            positionIds: [[s], [gapped.position_ids[3 + step] as number]],
            past,
            attentionMask: [new Array(s + 1).fill(1), [0, 0, ...new Array(s - 1).fill(1)]],
          });
          expect(
            logitsAtIdsError(out.logits.subarray(0, V), V, golden.logit_ids, [
              full.logits_at_ids[s] as number[],
            ]),
          ).toBeLessThanOrEqual(1e-5);
          expect(
            logitsAtIdsError(out.logits.subarray(V), V, golden.logit_ids, [
              gapped.logits_at_ids[3 + step] as number[],
            ]),
          ).toBeLessThanOrEqual(1e-5);
          past = out.present;
        }
      } finally {
        await model.dispose();
      }
    },
  );
});
