// Quantized folders (int8, int4; blocks of 32) against float32 on both golden fixtures.
//
// 1. Exactness of the plumbing: with float activations, the MatMulNBits graph equals the float32
//    graph on the weights the codes stand for (dequantized) to float rounding (1e-5, the goldens'
//    tolerance). With int8 activations (the serving setting) each MatMulNBits equals a float
//    matmul whose input is rounded to int8 per block (matmul-nbits.test.ts); a whole model cannot
//    be compared that tightly, since an upstream difference of one ulp may flip a rounding.
// 2. The error those roundings may cause, derived, not tuned: round to nearest moves each weight
//    by at most half a step of its block, s/2 with s = max|w|/qmax. A "bound model" moves every
//    quantized weight by the full ±s/2 in random directions (and rounds linear inputs to int8 as
//    serving does); its error has 3x the variance of rounding's (uniform in ±s/2), so the
//    quantized model's error should stay within the largest error of a few bound models. From
//    that bound E follow the rest: a row whose float32 top-1 margin exceeds 2E keeps its top-1,
//    and greedy decoding matches at least up to the first step with a margin below 2E.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InMemoryTensor } from '../../../gpu-function/src/checkpoint/safetensors-writer.ts';
import { convertCheckpoint } from '../../../gpu-function/src/convert/convert.ts';
import type { ModelConfig } from '../../../gpu-function/src/model/config.ts';
import { writeGraph } from '../../../gpu-function/src/model-folder/graphs.ts';
import type { Manifest } from '../../../gpu-function/src/model-folder/manifest.ts';
import { H128, hasFixtures, TINY } from '../convert/helpers.ts';
import {
  boundTensors,
  dequantizedTensors,
  type FloatModel,
  fixtureTensors,
  openFloatModel,
  runLogits,
  SCRATCH,
  SERVING_OPTIONS,
} from './reference-model.ts';

const BLOCK = 32;
/** Bound models per case: each is a full model run; a few suffice (see the header). */
const DRAWS = 3;
const FLOAT_ROUNDING = 1e-5;

interface Golden {
  sequences: { len40: { input_ids: number[] } };
  greedy: { prompt_ids: number[]; new_tokens: number[] };
}

/** The rows compared: the 40-token golden sequence, and the greedy continuation (teacher-forced). */
interface Inputs {
  sequence: number[];
  greedyIds: number[];
  /** Rows of greedyIds whose logits chose new token i. */
  greedyRows: number[];
  newTokens: number[];
}

type Run = (ids: number[]) => Promise<Float32Array>;
interface Outputs {
  sequence: Float32Array;
  greedy: Float32Array;
}

const outputsOf = async (run: Run, inputs: Inputs): Promise<Outputs> => ({
  sequence: await run(inputs.sequence),
  greedy: await run(inputs.greedyIds),
});

function maxAbs(a: Outputs, b: Outputs): number {
  let m = 0;
  for (const key of ['sequence', 'greedy'] as const) {
    const x = a[key];
    const y = b[key];
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  }
  return m;
}

function top2(row: Float32Array): { argmax: number; margin: number } {
  let best = 0;
  let second = Number.NEGATIVE_INFINITY;
  for (let v = 1; v < row.length; v++) {
    if (row[v]! > row[best]!) {
      second = row[best]!;
      best = v;
    } else if (row[v]! > second) second = row[v]!;
  }
  return { argmax: best, margin: row[best]! - second };
}

const rowOf = (logits: Float32Array, V: number, r: number) => logits.subarray(r * V, (r + 1) * V);

const FIXTURES = [
  { name: 'tiny-seed1234', dir: TINY },
  { name: 'h128-seed4321', dir: H128 },
];

describe.skipIf(!hasFixtures)('quantized weights vs float32 (golden fixtures)', () => {
  describe.each(FIXTURES)('$name', ({ name, dir }) => {
    let configJson: string;
    let base: InMemoryTensor[];
    let inputs: Inputs;
    let config: ModelConfig;
    let float: Outputs;

    beforeAll(async () => {
      configJson = await readFile(path.join(dir, 'config.json'), 'utf8');
      base = await fixtureTensors(dir);
      const golden = JSON.parse(await readFile(path.join(dir, 'golden.json'), 'utf8')) as Golden;
      const { prompt_ids: prompt, new_tokens: newTokens } = golden.greedy;
      inputs = {
        sequence: golden.sequences.len40.input_ids,
        greedyIds: [...prompt, ...newTokens.slice(0, -1)],
        greedyRows: newTokens.map((_, i) => prompt.length - 1 + i),
        newTokens,
      };
      const model = await openFloatModel(configJson, base);
      config = model.config;
      float = await outputsOf(model.run, inputs);
      await model.dispose();
    });

    describe.each(['int8', 'int4'] as const)('%s', (dtype) => {
      const scheme = { bits: dtype === 'int4' ? 4 : 8, blockSize: BLOCK, scaleDtype: 'float32' } as const;
      let folder: string;
      let manifest: Manifest;
      let quantized: Outputs;
      const release: (() => Promise<void>)[] = [];

      /** The folder's forward graph as the engine opens it (prepacked weights). */
      const openQuantized = async (activations: 'int8' | 'float'): Promise<Run> => {
        const file = await writeGraph(folder, 'forward', { quantizedActivations: activations });
        const session = await ort.InferenceSession.create(file, SERVING_OPTIONS);
        release.push(() => session.release());
        return (ids) => runLogits(session, config, ids);
      };
      const floatModel = async (tensors: InMemoryTensor[], int8Activations: boolean): Promise<FloatModel> => {
        const m = await openFloatModel(
          configJson,
          tensors,
          int8Activations ? { int8ActivationsBlock: BLOCK } : {},
        );
        release.push(() => m.dispose());
        return m;
      };

      beforeAll(async () => {
        const root = await mkdtemp(path.join(SCRATCH, `quant-${name}-`));
        release.push(() => rm(root, { recursive: true, force: true }));
        folder = path.join(root, dtype);
        ({ manifest } = await convertCheckpoint({
          checkpointDir: dir,
          outDir: folder,
          quantize: { dtype, blockSize: BLOCK },
        }));
        quantized = await outputsOf(await openQuantized('int8'), inputs);
      });
      afterAll(async () => {
        for (const r of release.splice(0).reverse()) await r();
      });

      it('float activations: equals float32 on the dequantized weights', async () => {
        const exact = await floatModel(await dequantizedTensors(folder, manifest), false);
        const err = maxAbs(
          await outputsOf(await openQuantized('float'), inputs),
          await outputsOf(exact.run, inputs),
        );
        console.info(`${name} ${dtype} float activations vs dequantized float32: ${err.toExponential(2)}`);
        expect(err).toBeLessThanOrEqual(FLOAT_ROUNDING);
      });

      it('error, top-1 agreement and greedy prefix within what the block scales allow', async () => {
        let bound = 0;
        for (let seed = 1; seed <= DRAWS; seed++) {
          const model = await floatModel(boundTensors(base, scheme, seed), true);
          bound = Math.max(bound, maxAbs(await outputsOf(model.run, inputs), float));
        }
        const error = maxAbs(quantized, float);

        const V = config.vocabSize;
        const rows = inputs.sequence.length;
        let agree = 0;
        let guaranteed = 0;
        for (let r = 0; r < rows; r++) {
          const want = top2(rowOf(float.sequence, V, r));
          const same = top2(rowOf(quantized.sequence, V, r)).argmax === want.argmax;
          if (same) agree++;
          if (want.margin > 2 * bound) {
            guaranteed++;
            expect(same, `row ${r}: margin ${want.margin} > 2 x ${bound}`).toBe(true);
          }
        }
        const steps = inputs.newTokens.length;
        const prefix = (logits: Float32Array) => {
          const i = inputs.greedyRows.findIndex(
            (r, k) => top2(rowOf(logits, V, r)).argmax !== inputs.newTokens[k],
          );
          return i === -1 ? steps : i;
        };
        expect(prefix(float.greedy)).toBe(steps); // float32 reproduces the golden continuation
        const margins = inputs.greedyRows.map((r) => top2(rowOf(float.greedy, V, r)).margin);
        const surePrefix = margins.findIndex((m) => m <= 2 * bound);
        const greedy = prefix(quantized.greedy);
        console.info(
          `${name} ${dtype}: max abs logit error ${error.toExponential(2)} (bound ${bound.toExponential(2)}), ` +
            `top-1 ${agree}/${rows} (>= ${guaranteed} guaranteed), greedy prefix ${greedy}/${steps} ` +
            `(>= ${surePrefix === -1 ? steps : surePrefix} guaranteed)`,
        );
        expect(error).toBeLessThanOrEqual(bound);
        expect(greedy).toBeGreaterThanOrEqual(surePrefix === -1 ? steps : surePrefix);
      });
    });
  });
});
