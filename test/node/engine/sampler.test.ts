import type * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Xoshiro128 } from '../../../gpu-function/src/engine/prng.ts';
import {
  expectedDistribution,
  type SamplerParams,
  sampleMany,
  sampleRows,
  samplerSession,
} from './sampler-model.ts';

const V = 64;
let session: ort.InferenceSession;
beforeAll(async () => {
  session = await samplerSession(V);
});
afterAll(async () => {
  await session?.release();
});

function randomLogits(seed: number): Float32Array {
  const rng = new Xoshiro128(seed);
  // Roughly normal logits with spread 2, so the distribution has a clear head and a long tail.
  return Float32Array.from({ length: V }, () => {
    let s = 0;
    for (let i = 0; i < 4; i++) s += rng.nextUniform();
    return (s - 2) * 3.5;
  });
}

function uniforms(seed: number, n: number): Float32Array {
  const rng = new Xoshiro128(seed);
  return Float32Array.from({ length: n }, () => rng.nextUniform());
}

const base: SamplerParams = { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seen: [] };

/** Pearson chi-square of observed counts against expected probabilities (cells with p > 0). */
function chiSquare(choices: number[], probs: Float64Array): { stat: number; dof: number; outside: number } {
  const counts = new Float64Array(probs.length);
  for (const c of choices) counts[c] = (counts[c] ?? 0) + 1;
  let stat = 0;
  let dof = -1;
  let outside = 0;
  probs.forEach((p, id) => {
    const observed = counts[id] ?? 0;
    if (p === 0) {
      outside += observed;
      return;
    }
    const expected = p * choices.length;
    stat += (observed - expected) ** 2 / expected;
    dof++;
  });
  return { stat, dof, outside };
}

/** Upper 0.1% point of chi-square with `dof` degrees of freedom (Wilson-Hilferty). */
function chiSquareCritical(dof: number): number {
  const z = 3.09;
  const a = 2 / (9 * dof);
  return dof * (1 - a + z * Math.sqrt(a)) ** 3;
}

describe('in-graph sampler', () => {
  const cases: [string, SamplerParams][] = [
    ['plain softmax', base],
    ['temperature 0.6', { ...base, temperature: 0.6 }],
    ['temperature 1.7 + top-k 10', { ...base, temperature: 1.7, topK: 10 }],
    ['top-p 0.8', { ...base, topP: 0.8 }],
    ['top-k 20 then top-p 0.7 at temperature 0.8', { ...base, temperature: 0.8, topK: 20, topP: 0.7 }],
    ['repetition penalty 1.8', { ...base, repetitionPenalty: 1.8, seen: [0, 5, 9, 33, 63] }],
    // logit_bias and the presence/frequency penalties reach the sampler as one additive table.
    [
      'logit bias and penalties (additive)',
      {
        ...base,
        additive: Float32Array.from({ length: V }, (_, id) => (id % 7 === 0 ? 2.5 : id % 5 === 0 ? -1.5 : 0)),
      },
    ],
    ['min_tokens: blocked ids', { ...base, blocked: [1, 2, 3, 10, 20] }],
    ['min-p 0.05 at temperature 1.3', { ...base, temperature: 1.3, minP: 0.05 }],
    ['min-p 0.2 with top-k 30', { ...base, minP: 0.2, topK: 30 }],
  ];
  for (const [name, params] of cases) {
    it(`follows softmax(logits / T) truncated by top-k and top-p: ${name}`, async () => {
      const logits = randomLogits(11);
      const probs = expectedDistribution(logits, params);
      const choices = await sampleMany(session, logits, uniforms(7, 20000), params);
      const { stat, dof, outside } = chiSquare(choices, probs);
      expect(outside).toBe(0); // nothing outside the top-k / top-p set, ever
      expect(dof).toBeGreaterThan(1);
      expect(stat).toBeLessThan(chiSquareCritical(dof));
      const maxDeviation = Math.max(
        ...Array.from(probs, (p, id) =>
          Math.abs(choices.filter((c) => c === id).length / choices.length - p),
        ),
      );
      expect(maxDeviation).toBeLessThan(0.015);
    });
  }

  it('truncates exactly: top-k keeps k ids and top-p keeps the smallest head reaching p', async () => {
    const logits = randomLogits(3);
    const k = await sampleMany(session, logits, uniforms(5, 4000), { ...base, topK: 3 });
    expect(new Set(k).size).toBe(3);
    const p = await sampleMany(session, logits, uniforms(5, 4000), { ...base, topP: 1e-6 });
    expect(new Set(p)).toEqual(new Set([logits.indexOf(Math.max(...logits))]));
  });

  it('temperature 0 is the argmax of the penalised logits, whatever u is', async () => {
    const logits = randomLogits(21);
    const best = logits.indexOf(Math.max(...logits));
    const plain = await sampleMany(session, logits, uniforms(1, 50), { ...base, temperature: 0 });
    expect(new Set(plain)).toEqual(new Set([best]));
    // Penalising the winner (positive logit: divided by r) hands the choice to the runner-up.
    const sorted = [...logits].sort((a, b) => b - a);
    const r = ((sorted[0] as number) / (sorted[1] as number)) * 1.01;
    expect(sorted[1]).toBeGreaterThan(0);
    const penalised = await sampleMany(session, logits, uniforms(1, 5), {
      ...base,
      temperature: 0,
      repetitionPenalty: r,
      seen: [best],
    });
    expect(new Set(penalised)).toEqual(new Set([logits.indexOf(sorted[1] as number)]));
  });

  it('repetition penalty multiplies negative logits by r (present ids become less likely)', async () => {
    // Two ids with negative logits; the present one at -1 against the absent one at -1.5.
    const logits = new Float32Array(V).fill(-30);
    logits[10] = -1;
    logits[20] = -1.5;
    const u = uniforms(9, 20000);
    const none = await sampleMany(session, logits, u, base);
    const penalised = await sampleMany(session, logits, u, { ...base, repetitionPenalty: 2, seen: [10] });
    const share = (c: number[]) => c.filter((id) => id === 10).length / c.length;
    // Without penalty: e^-1 / (e^-1 + e^-1.5) = 0.622; with r = 2 (-1 -> -2): e^-2 / (e^-2 + e^-1.5) = 0.378.
    expect(share(none)).toBeCloseTo(0.622, 1);
    expect(share(penalised)).toBeCloseTo(0.378, 1);
  });

  it('maps u to the inverse CDF (same u, same id) and covers u up to 1 - 2^-24', async () => {
    const logits = randomLogits(4);
    const u = Float32Array.from([0, 0.25, 0.5, 0.999, 1 - 2 ** -24]);
    const a = await sampleMany(session, logits, u, base);
    const b = await sampleMany(session, logits, u, base);
    expect(a).toEqual(b);
    const probs = expectedDistribution(logits, base);
    for (const id of a) expect(probs[id]).toBeGreaterThan(0);
  });

  it("a row's choice depends only on its own parameters, not on the rest of its batch", async () => {
    const logits = randomLogits(8);
    const kinds: SamplerParams[] = [
      base,
      { ...base, temperature: 0.7, topK: 5 },
      { ...base, temperature: 0 },
      { ...base, topP: 0.5, repetitionPenalty: 1.3, seen: [1, 2] },
    ];
    const u = uniforms(13, 8);
    const alone = await Promise.all(kinds.map((p) => sampleMany(session, logits, u, p)));
    // Mixed batch: row i uses kinds[i % 4] and u[i].
    const mixed = await sampleRows(
      session,
      logits,
      Array.from(u, (ui, i) => ({ u: ui, p: kinds[i % kinds.length] as SamplerParams })),
    );
    for (const [i, id] of mixed.entries()) expect(id).toBe(alone[i % kinds.length]?.[i]);
    // Plain rows alone never sort; with a truncating row beside them they must still agree.
    const plainOnly = await sampleMany(session, logits, u, base);
    expect(plainOnly).toEqual(alone[0]);
  });
});
