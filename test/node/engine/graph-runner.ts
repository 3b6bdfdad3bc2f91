// Runs the generation graph directly (batch >= 1, rows of equal length), for tests of the graph itself.

import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../../../gpu-function/src/model/config.ts';
import { GEN, pastKeyName, pastValueName } from '../../../gpu-function/src/model/generation-io.ts';
import { writeGraph } from '../../../gpu-function/src/model-folder/graphs.ts';

export interface GraphRun {
  prompts: number[][];
  steps: number;
  temperature?: number[];
  topK?: number[];
  topP?: number[];
  repetitionPenalty?: number[];
  uniforms?: Float32Array;
  seen?: number[][];
  stops?: number[][];
  done?: boolean[];
}

export async function openGraph(dir: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(await writeGraph(dir, 'generate'), { intraOpNumThreads: 1 });
}

const int64 = (rows: number[][]) =>
  new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0]?.length ?? 0]);

/** Returns tokens as [steps][batch] and the raw outputs. */
export async function runGraph(
  session: ort.InferenceSession,
  config: ModelConfig,
  dtype: 'float32' | 'float16',
  r: GraphRun,
): Promise<{ tokens: number[][]; out: ort.InferenceSession.ReturnType }> {
  const B = r.prompts.length;
  const fill = (v: number[] | undefined, d: number) => Float32Array.from(v ?? new Array(B).fill(d));
  const feeds: Record<string, ort.Tensor> = {
    [GEN.inputIds]: int64(r.prompts),
    [GEN.positionIds]: int64(r.prompts.map((p) => p.map((_, i) => i))),
    [GEN.maxSteps]: new ort.Tensor('int64', BigInt64Array.of(BigInt(r.steps)), []),
    [GEN.uniforms]: new ort.Tensor('float32', r.uniforms ?? new Float32Array(r.steps * B), [r.steps, B]),
    temperature: new ort.Tensor('float32', fill(r.temperature, 0), [B]),
    top_k: new ort.Tensor('int64', BigInt64Array.from(r.topK ?? new Array(B).fill(0), BigInt), [B]),
    top_p: new ort.Tensor('float32', fill(r.topP, 1), [B]),
    repetition_penalty: new ort.Tensor('float32', fill(r.repetitionPenalty, 1), [B]),
    min_p: new ort.Tensor('float32', new Float32Array(B), [B]),
    presence_penalty: new ort.Tensor('float32', new Float32Array(B), [B]),
    frequency_penalty: new ort.Tensor('float32', new Float32Array(B), [B]),
    [GEN.seenIds]: int64(r.seen ?? r.prompts.map(() => [])),
    // End-of-text stops a row as the engine sends it: among the row's stop ids.
    [GEN.stopIds]: int64((r.stops ?? r.prompts.map(() => [])).map((s) => [config.eosTokenId, ...s])),
    [GEN.countedIds]: new ort.Tensor('int64', new BigInt64Array(0), [B, 0]),
    [GEN.countedWeights]: new ort.Tensor('float32', new Float32Array(0), [B, 0]),
    [GEN.biasIds]: new ort.Tensor('int64', new BigInt64Array(0), [B, 0]),
    [GEN.biasValues]: new ort.Tensor('float32', new Float32Array(0), [B, 0]),
    [GEN.minTokensLeft]: new ort.Tensor('int64', new BigInt64Array(B), [B]),
    [GEN.done]: new ort.Tensor('bool', r.done ?? new Array(B).fill(false), [B]),
    [GEN.attentionMask]: int64(r.prompts.map((p) => p.map(() => 1))),
    [GEN.scoreTargets]: new ort.Tensor('int64', new BigInt64Array(0), [B, 0]),
    [GEN.budget]: new ort.Tensor('int64', BigInt64Array.from(r.prompts.map(() => BigInt(r.steps))), [B]),
  };
  const dims = [B, config.numHeads, 0, config.headSize];
  for (let l = 0; l < config.numLayers; l++) {
    for (const name of [pastKeyName(l), pastValueName(l)]) {
      feeds[name] = new ort.Tensor(
        dtype,
        dtype === 'float32' ? new Float32Array(0) : new Uint16Array(0),
        dims,
      );
    }
  }
  const out = await session.run(feeds);
  const t = out[GEN.tokens] as ort.Tensor;
  const flat = Array.from(t.data as BigInt64Array, Number);
  const steps = Number(t.dims[0]);
  return { tokens: Array.from({ length: steps }, (_, s) => flat.slice(s * B, (s + 1) * B)), out };
}
