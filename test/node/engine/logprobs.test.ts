// Log-probabilities computed in the graph: the prompt's scores (prefill) and each generated
// token's, with the top alternatives, against log-softmax of the forward pass's full logits
// (itself checked against the golden logits here), alone and in a padded batch.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GenerationEngine, type GenerationStream } from '../../../gpu-function/src/engine/engine.ts';
import type { TokenLogprob } from '../../../gpu-function/src/engine/protocol.ts';
import { openForwardSession } from '../../../gpu-function/src/model/forward-session.ts';
import { loadGolden } from '../model/fixture-model.ts';
import { FIXTURES, type FixtureName, fixtureModelDir, removeDir } from './fixture-model.ts';

/** log-softmax of each row of [T, V] float32 logits, in float64. */
function logSoftmax(logits: Float32Array, vocab: number): Float64Array[] {
  const rows: Float64Array[] = [];
  for (let t = 0; t < logits.length / vocab; t++) {
    const row = logits.subarray(t * vocab, (t + 1) * vocab);
    let max = Number.NEGATIVE_INFINITY;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    const lse = max + Math.log(sum);
    rows.push(Float64Array.from(row, (v) => v - lse));
  }
  return rows;
}

function topOf(row: Float64Array, k: number): [number, number][] {
  return [...row.keys()]
    .sort((a, b) => (row[b] as number) - (row[a] as number))
    .slice(0, k)
    .map((id) => [id, row[id] as number]);
}

async function collect(stream: GenerationStream) {
  const ids: number[] = [];
  const logprobs: TokenLogprob[] = [];
  let prompt: (TokenLogprob | null)[] | undefined;
  for await (const c of stream) {
    if (c.promptLogprobs) prompt = c.promptLogprobs;
    if (c.index !== 0) continue;
    ids.push(...c.ids);
    logprobs.push(...(c.logprobs ?? []));
  }
  return { ids, logprobs, prompt };
}

describe.skipIf(!existsSync(FIXTURES))('log-probabilities in the graph', () => {
  for (const fixture of ['tiny-seed1234', 'h128-seed4321'] as FixtureName[]) {
    describe(fixture, () => {
      let dir: string;
      let engine: GenerationEngine;
      let reference: (ids: number[]) => Promise<Float64Array[]>;
      let release: () => Promise<void>;
      beforeAll(async () => {
        dir = await fixtureModelDir(fixture, 'float32');
        engine = await GenerationEngine.open(dir, { intraOpNumThreads: 1 });
        const forward = await openForwardSession(dir);
        const V = forward.config.vocabSize;
        reference = async (ids) => logSoftmax((await forward.run({ inputIds: [ids] })).logits, V);
        release = () => forward.release();
      });
      afterAll(async () => {
        await release?.();
        await engine?.close();
        await removeDir(dir);
      });

      it('scores a prompt (max_tokens 0): each token against the full log-softmax, the first null', async () => {
        const golden = await loadGolden(fixture);
        const block = golden.sequences.len40;
        const ref = await reference(block.input_ids);
        // The reference is the golden one: its log-normaliser matches the golden logsumexp.
        ref.forEach((row, t) => {
          // golden logit - our log-softmax = our log-normaliser, which must be the golden one.
          const id = golden.logit_ids[0] as number;
          const lse = (block.logits_at_ids[t]?.[0] as number) - (row[id] as number);
          expect(Math.abs(lse - (block.logsumexp[t] as number))).toBeLessThan(1e-5);
        });
        const { ids, prompt } = await collect(
          engine.generate({ promptIds: block.input_ids, maxNewTokens: 0, scorePrompt: true, logprobs: 3 }),
        );
        expect(ids).toEqual([]);
        expect(prompt).toHaveLength(block.input_ids.length);
        expect(prompt?.[0]).toBeNull();
        let worst = 0;
        for (let t = 1; t < block.input_ids.length; t++) {
          const got = prompt?.[t] as TokenLogprob;
          const row = ref[t - 1] as Float64Array;
          worst = Math.max(worst, Math.abs(got.logprob - (row[block.input_ids[t] as number] as number)));
          const want = topOf(row, 3);
          expect(got.top.map(([id]) => id)).toEqual(want.map(([id]) => id));
          got.top.forEach(([, lp], i) => {
            worst = Math.max(worst, Math.abs(lp - (want[i]?.[1] as number)));
          });
        }
        expect(worst).toBeLessThan(1e-5);
      });

      it("gives each generated token's log-probability, alone and in a padded batch", async () => {
        const golden = await loadGolden(fixture);
        const prompt = golden.greedy.prompt_ids;
        const alone = await collect(
          engine.generate({ promptIds: prompt, maxNewTokens: 12, temperature: 0, logprobs: 2 }),
        );
        expect(alone.ids).toEqual(golden.greedy.new_tokens.slice(0, 12));
        const ref = await reference([...prompt, ...alone.ids]);
        alone.ids.forEach((id, i) => {
          const row = ref[prompt.length - 1 + i] as Float64Array;
          const got = alone.logprobs[i] as TokenLogprob;
          expect(Math.abs(got.logprob - (row[id] as number))).toBeLessThan(1e-5);
          expect(got.top[0]?.[0]).toBe(id); // greedy: the most likely id
          expect(got.top).toHaveLength(2);
        });
        // With a longer neighbour (padding on this row's left) the values stay the same.
        const [batched] = await Promise.all([
          collect(engine.generate({ promptIds: prompt, maxNewTokens: 12, temperature: 0, logprobs: 2 })),
          collect(
            engine.generate({
              promptIds: [...prompt, ...prompt, 5],
              maxNewTokens: 12,
              temperature: 0.7,
              seed: 1,
            }),
          ),
        ]);
        expect(batched.ids).toEqual(alone.ids);
        batched.logprobs.forEach((lp, i) => {
          expect(Math.abs(lp.logprob - (alone.logprobs[i]?.logprob as number))).toBeLessThan(1e-5);
        });
        // Without logprobs, none are sent.
        const plain = await collect(engine.generate({ promptIds: prompt, maxNewTokens: 3, temperature: 0 }));
        expect(plain.logprobs).toEqual([]);
      });

      it('refuses max_tokens 0 unless the prompt is scored, and logprobs above 5', () => {
        expect(() => engine.generate({ promptIds: [5, 6], maxNewTokens: 0 })).toThrow(/scored/);
        expect(() => engine.generate({ promptIds: [5, 6], maxNewTokens: 2, logprobs: 6 })).toThrow(
          /logprobs/,
        );
      });
    });
  }
});
