// One request's chunked decode against the generation graph (runs inside the worker thread).
// The host keeps the key/value cache between runs: each run takes it in, decodes a chunk of
// tokens with in-graph sampling, and hands the grown cache back. Bytes crossing the
// host/runtime boundary are counted per run (inputs + outputs), which is what PCIe carries
// with the CUDA execution provider.

import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../model/config.ts';
import {
  FINISHED_ROW_TOKEN,
  GEN,
  pastKeyName,
  pastValueName,
  presentKeyName,
  presentValueName,
} from '../model/generation-io.ts';
import { type ChunkPolicy, chunkSizes } from './chunk-schedule.ts';
import { Xoshiro128 } from './prng.ts';
import type { ResolvedRequest } from './request.ts';

export type FinishReason = 'length' | 'stop' | 'eos' | 'cancelled';

export interface LoadedModel {
  session: ort.InferenceSession;
  config: ModelConfig;
  dtype: 'float32' | 'float16';
}

export interface ChunkEvent {
  /** New ids, without the id that ended generation (end-of-text or a stop id). */
  ids: number[];
}

export interface DecodeOutcome {
  finishReason: FinishReason;
  /** The end-of-text or stop id that ended generation, if one did. */
  stopTokenId: number | null;
  /** Tokens the model produced, the ending id included. */
  completionTokens: number;
  runs: number;
  /** Inputs + outputs of every run, in bytes. */
  boundaryBytes: number;
  /** First run (prompt + first chunk), then the rest. */
  firstRunMs: number;
  laterRunsMs: number;
  chunkSizes: number[];
}

export interface DecodeHooks {
  onChunk(event: ChunkEvent): void;
  /** Checked before every run. */
  cancelled(): boolean;
}

const int64 = (values: readonly number[], dims: number[]) =>
  new ort.Tensor(
    'int64',
    BigInt64Array.from(values, (v) => BigInt(v)),
    dims,
  );

function tensorBytes(t: ort.Tensor): number {
  return (t.data as ArrayBufferView).byteLength;
}

function emptyCache(model: LoadedModel): Record<string, ort.Tensor> {
  const { numLayers, numHeads, headSize } = model.config;
  const dims = [1, numHeads, 0, headSize];
  const make = () =>
    model.dtype === 'float32'
      ? new ort.Tensor('float32', new Float32Array(0), dims)
      : new ort.Tensor('float16', new Uint16Array(0), dims);
  const cache: Record<string, ort.Tensor> = {};
  for (let l = 0; l < numLayers; l++) {
    cache[pastKeyName(l)] = make();
    cache[pastValueName(l)] = make();
  }
  return cache;
}

export async function decode(
  model: LoadedModel,
  req: ResolvedRequest,
  policy: ChunkPolicy,
  hooks: DecodeHooks,
): Promise<DecodeOutcome> {
  const { eosTokenId, numLayers } = model.config;
  const rng = new Xoshiro128(req.seed);
  const stopIds = new Set(req.stopIds);
  const penalised = req.repetitionPenalty !== 1;
  // Ids the repetition penalty applies to; not sent at all when it is off.
  const seen = penalised ? [...req.promptIds] : [];
  const generated: number[] = [];
  let pending = req.promptIds; // tokens not yet in the cache
  let cache = emptyCache(model);
  const out: DecodeOutcome = {
    finishReason: 'length',
    stopTokenId: null,
    completionTokens: 0,
    runs: 0,
    boundaryBytes: 0,
    firstRunMs: 0,
    laterRunsMs: 0,
    chunkSizes: [],
  };

  const fixed = {
    [GEN.temperature]: new ort.Tensor('float32', Float32Array.of(req.temperature), [1]),
    [GEN.topK]: int64([req.topK], [1]),
    [GEN.topP]: new ort.Tensor('float32', Float32Array.of(req.topP), [1]),
    [GEN.repetitionPenalty]: new ort.Tensor('float32', Float32Array.of(req.repetitionPenalty), [1]),
    [GEN.stopIds]: int64(req.stopIds, [1, req.stopIds.length]),
    [GEN.done]: new ort.Tensor('bool', [false], [1]),
  };

  for (const steps of chunkSizes(policy, req.maxNewTokens)) {
    if (hooks.cancelled()) {
      out.finishReason = 'cancelled';
      break;
    }
    const start = req.promptIds.length + generated.length - pending.length;
    const uniforms = new Float32Array(steps);
    for (let i = 0; i < steps; i++) uniforms[i] = rng.nextUniform();
    const feeds: Record<string, ort.Tensor> = {
      ...fixed,
      ...cache,
      [GEN.inputIds]: int64(pending, [1, pending.length]),
      [GEN.positionIds]: int64(
        pending.map((_, i) => start + i),
        [1, pending.length],
      ),
      [GEN.maxSteps]: new ort.Tensor('int64', BigInt64Array.of(BigInt(steps)), []),
      [GEN.uniforms]: new ort.Tensor('float32', uniforms, [steps, 1]),
      [GEN.seenIds]: int64(seen, [1, seen.length]),
    };
    const t0 = performance.now();
    const result = await model.session.run(feeds);
    const ms = performance.now() - t0;
    if (out.runs === 0) out.firstRunMs = ms;
    else out.laterRunsMs += ms;
    out.runs++;
    out.chunkSizes.push(steps);
    for (const t of Object.values(feeds)) out.boundaryBytes += tensorBytes(t);
    for (const t of Object.values(result)) out.boundaryBytes += tensorBytes(t as ort.Tensor);

    cache = {};
    for (let l = 0; l < numLayers; l++) {
      cache[pastKeyName(l)] = result[presentKeyName(l)] as ort.Tensor;
      cache[pastValueName(l)] = result[presentValueName(l)] as ort.Tensor;
    }
    const tokens = result[GEN.tokens] as ort.Tensor;
    const ids: number[] = [];
    let finished = false;
    for (const raw of tokens.data as BigInt64Array) {
      const id = Number(raw);
      if (id === FINISHED_ROW_TOKEN) break;
      out.completionTokens++;
      if (id === eosTokenId || stopIds.has(id)) {
        out.finishReason = id === eosTokenId ? 'eos' : 'stop';
        out.stopTokenId = id;
        finished = true;
        break;
      }
      ids.push(id);
    }
    generated.push(...ids);
    if (penalised) seen.push(...ids);
    if (ids.length > 0) hooks.onChunk({ ids });
    if (finished) break;
    pending = [generated[generated.length - 1] as number];
  }
  return out;
}
