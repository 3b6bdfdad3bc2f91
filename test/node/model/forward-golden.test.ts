// The forward graph against golden.json on both fixtures, for every rotary/attention path:
// full sequences, explicit and gapped positions, incremental decoding with the KV cache, and
// the greedy continuation. Tolerances from ../shared/fixtures/model/README.md.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecoderOptions } from '../../../gpu-function/src/model/decoder.ts';
import type { KvCache } from '../../../gpu-function/src/model/forward-session.ts';
import {
  compareBlock,
  type FixtureModel,
  type FixtureName,
  type Golden,
  hasFixtures,
  hiddenError,
  loadGolden,
  maxAbsDiff,
  openFixtureModel,
  rowStats,
} from './fixture-model.ts';

const LOGITS_TOL = 1e-5;
const STATS_TOL = 1e-5;
const HIDDEN_TOL = 1e-4;

interface Variant {
  fixture: FixtureName;
  rotary: NonNullable<DecoderOptions['rotary']>;
  attention: NonNullable<DecoderOptions['attention']>;
}

// h128 has the 7B's head (D 128, R 32): the production path (fused rotary + fused attention)
// and both standard fallbacks. tiny (R 4) defaults to standard rotary; the CPU op accepts
// R 4 as well, so the fused one is covered there too.
const VARIANTS: Variant[] = [
  { fixture: 'h128-seed4321', rotary: 'fused', attention: 'fused' },
  { fixture: 'h128-seed4321', rotary: 'standard', attention: 'fused' },
  { fixture: 'h128-seed4321', rotary: 'fused', attention: 'standard' },
  { fixture: 'tiny-seed1234', rotary: 'standard', attention: 'fused' },
  { fixture: 'tiny-seed1234', rotary: 'fused', attention: 'fused' },
  { fixture: 'tiny-seed1234', rotary: 'standard', attention: 'standard' },
];

const fixturesPresent = await hasFixtures();

describe.skipIf(!fixturesPresent)('forward graph vs golden', () => {
  describe.each(VARIANTS)(
    '$fixture, rotary $rotary, attention $attention',
    ({ fixture, rotary, attention }) => {
      let model: FixtureModel;
      let golden: Golden;
      let V: number;
      let H: number;

      beforeAll(async () => {
        golden = await loadGolden(fixture);
        model = await openFixtureModel(fixture, { rotary, attention, finalHidden: true });
        V = model.session.config.vocabSize;
        H = model.session.config.hiddenSize;
      });
      afterAll(async () => {
        await model?.dispose();
      });

      it.each(['len1', 'len7', 'len40'] as const)(
        'full sequence %s: logits, stats, final hidden',
        async (key) => {
          const block = golden.sequences[key];
          const out = await model.session.run({
            inputIds: [block.input_ids],
            positionIds: [block.position_ids],
          });
          const e = compareBlock(out.logits, V, golden, block);
          const hidden = hiddenError(out.finalHidden?.data as Float32Array, H, block.final_hidden);
          console.info(
            `${fixture} ${rotary}/${attention} ${key}: logits ${e.logits.toExponential(2)} hidden ${hidden.toExponential(2)}`,
          );
          expect(e.logits).toBeLessThanOrEqual(LOGITS_TOL);
          expect(e.stats).toBeLessThanOrEqual(STATS_TOL);
          expect(e.top5).toBeLessThanOrEqual(STATS_TOL);
          expect(e.argmaxMismatches).toBe(0);
          expect(hidden).toBeLessThanOrEqual(HIDDEN_TOL);
        },
      );

      it.each(['position_offset', 'position_gapped'] as const)('explicit positions: %s', async (key) => {
        const block = golden[key];
        const out = await model.session.run({
          inputIds: [block.input_ids],
          positionIds: [block.position_ids],
        });
        const e = compareBlock(out.logits, V, golden, block);
        console.info(`${fixture} ${rotary}/${attention} ${key}: logits ${e.logits.toExponential(2)}`);
        expect(e.logits).toBeLessThanOrEqual(LOGITS_TOL);
        expect(e.stats).toBeLessThanOrEqual(STATS_TOL);
        expect(e.top5).toBeLessThanOrEqual(STATS_TOL);
        expect(hiddenError(out.finalHidden?.data as Float32Array, H, block.final_hidden)).toBeLessThanOrEqual(
          HIDDEN_TOL,
        );
      });

      it('incremental decoding (33-token prefix + 7 cached steps) equals the full pass and the golden', async () => {
        const full = golden.sequences.len40;
        const inc = golden.incremental;
        const P = inc.prefix_length;
        const fullOut = await model.session.run({
          inputIds: [full.input_ids],
          positionIds: [full.position_ids],
        });

        // Default positions: the prefix gets 0..P-1 and each step the current cache length.
        const prefix = await model.session.run({ inputIds: [full.input_ids.slice(0, P)] });
        const rows: Float32Array[] = [prefix.logits.subarray((P - 1) * V, P * V)];
        let cache: KvCache = prefix.present;
        for (let t = P; t < full.input_ids.length; t++) {
          const step = await model.session.run({ inputIds: [[full.input_ids[t] as number]], past: cache });
          expect(step.present[0]?.key.dims).toEqual([
            1,
            model.session.config.numHeads,
            t + 1,
            model.session.config.headSize,
          ]);
          rows.push(step.logits);
          cache = step.present;
        }
        const incremental = new Float32Array(rows.length * V);
        for (const [i, r] of rows.entries()) incremental.set(r, i * V);

        const e = compareBlock(incremental, V, golden, inc);
        const vsFull = maxAbsDiff(incremental, fullOut.logits.subarray((P - 1) * V));
        console.info(
          `${fixture} ${rotary}/${attention} incremental: golden ${e.logits.toExponential(2)} vs full ${vsFull.toExponential(2)}`,
        );
        expect(e.logits).toBeLessThanOrEqual(LOGITS_TOL);
        expect(e.stats).toBeLessThanOrEqual(STATS_TOL);
        expect(e.argmaxMismatches).toBe(0);
        expect(vsFull).toBeLessThanOrEqual(1e-6);
      });

      it('greedy continuation with the cache reproduces all 20 tokens', async () => {
        const { prompt_ids, num_new_tokens, new_tokens } = golden.greedy;
        let out = await model.session.run({ inputIds: [prompt_ids] });
        let last = out.logits.subarray((prompt_ids.length - 1) * V);
        const tokens: number[] = [];
        for (let i = 0; i < num_new_tokens; i++) {
          const next = rowStats(last).argmax;
          tokens.push(next);
          if (i + 1 === num_new_tokens) break;
          out = await model.session.run({ inputIds: [[next]], past: out.present });
          last = out.logits;
        }
        expect(tokens).toEqual(new_tokens);
      });
    },
  );
});
