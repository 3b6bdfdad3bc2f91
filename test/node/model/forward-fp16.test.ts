// float16 in two senses: the fp16 weight file run in a float32 graph (exact golden entry
// fp16_weights_upcast, via Cast nodes), and the float16-compute graph meant for the GPU (no
// golden: it must stay close to float32 and pick the same tokens where the choice is clear).

import { describe, expect, it } from 'vitest';
import {
  compareBlock,
  FIXTURE_NAMES,
  type FixtureName,
  hasFixtures,
  hiddenError,
  loadGolden,
  logitsAtIdsError,
  maxAbsDiff,
  openFixtureModel,
  rowStats,
} from './fixture-model.ts';

const fixturesPresent = await hasFixtures();

describe.skipIf(!fixturesPresent)('forward graph with float16', () => {
  it.each(FIXTURE_NAMES)(
    '%s: fp16 weights in the float32 graph match fp16_weights_upcast',
    async (fixture) => {
      const golden = await loadGolden(fixture);
      const block = golden.fp16_weights_upcast;
      const model = await openFixtureModel(fixture, {
        weightsFile: 'model.fp16.safetensors',
        finalHidden: true,
      });
      try {
        expect(model.session.dtype).toBe('float32');
        const out = await model.session.run({
          inputIds: [block.input_ids],
          positionIds: [block.position_ids],
        });
        const e = compareBlock(out.logits, model.session.config.vocabSize, golden, block);
        const hidden = hiddenError(
          out.finalHidden?.data as Float32Array,
          model.session.config.hiddenSize,
          block.final_hidden,
        );
        // The fp32-weight golden is ~4e-4 away: passing this proves the fp16 bytes were used.
        const vsFp32Weights = logitsAtIdsError(
          out.logits,
          model.session.config.vocabSize,
          golden.logit_ids,
          golden.sequences.len40.logits_at_ids,
        );
        console.info(
          `${fixture} fp16 weights: logits ${e.logits.toExponential(2)} (fp32-weight golden ${vsFp32Weights.toExponential(2)})`,
        );
        expect(e.logits).toBeLessThanOrEqual(1e-5);
        expect(e.stats).toBeLessThanOrEqual(1e-5);
        expect(e.top5).toBeLessThanOrEqual(1e-5);
        expect(e.argmaxMismatches).toBe(0);
        expect(hidden).toBeLessThanOrEqual(1e-4);
        expect(vsFp32Weights).toBeGreaterThan(1e-4);
      } finally {
        await model.dispose();
      }
    },
  );

  const COMPUTE: { fixture: FixtureName; rotary: 'fused' | 'standard'; attention: 'fused' | 'standard' }[] = [
    { fixture: 'h128-seed4321', rotary: 'fused', attention: 'fused' },
    { fixture: 'h128-seed4321', rotary: 'standard', attention: 'standard' },
    { fixture: 'tiny-seed1234', rotary: 'standard', attention: 'fused' },
  ];

  it.each(COMPUTE)(
    '$fixture: float16 compute ($rotary rotary, $attention attention) stays close to float32',
    async (c) => {
      const golden = await loadGolden(c.fixture);
      const block = golden.fp16_weights_upcast;
      const model = await openFixtureModel(c.fixture, {
        weightsFile: 'model.fp16.safetensors',
        dtype: 'float16',
        rotary: c.rotary,
        attention: c.attention,
      });
      try {
        expect(model.session.dtype).toBe('float16');
        const V = model.session.config.vocabSize;
        const out = await model.session.run({
          inputIds: [block.input_ids],
          positionIds: [block.position_ids],
        });
        const err = logitsAtIdsError(out.logits, V, golden.logit_ids, block.logits_at_ids);
        let clearRows = 0;
        let agree = 0;
        block.margin.forEach((m, r) => {
          if (m <= 0.02) return; // fp16 rounding can flip near-ties
          clearRows++;
          if (rowStats(out.logits.subarray(r * V, (r + 1) * V)).argmax === block.argmax[r]) agree++;
        });
        // The cache path in float16: one cached step equals the full pass's last row closely.
        const T = block.input_ids.length;
        const prefix = await model.session.run({ inputIds: [block.input_ids.slice(0, T - 1)] });
        const step = await model.session.run({
          inputIds: [block.input_ids.slice(T - 1)],
          past: prefix.present,
        });
        const stepVsFull = maxAbsDiff(step.logits, out.logits.subarray((T - 1) * V));
        console.info(
          `${c.fixture} fp16 compute ${c.rotary}/${c.attention}: max abs vs golden ${err.toExponential(2)}, argmax ${agree}/${clearRows}, step vs full ${stepVsFull.toExponential(2)}`,
        );
        expect(err).toBeLessThan(5e-3);
        expect(clearRows).toBeGreaterThan(0);
        expect(agree).toBe(clearRows);
        expect(stepVsFull).toBeLessThan(1e-3);
      } finally {
        await model.dispose();
      }
    },
  );
});
