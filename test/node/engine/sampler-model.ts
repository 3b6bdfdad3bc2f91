// A model holding only the production sampler (emitSampler), so tests can feed it logits
// directly and compare its choices with the distribution computed on the host.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { encodeModel, GraphBuilder } from '../../../gpu-function/src/model/onnx/index.ts';
import { emitPresenceFrom, emitSampler } from '../../../gpu-function/src/model/sampler.ts';
import { ROW_PARAMETERS } from '../../../shared/src/protocol/parameters.ts';

export async function samplerSession(vocabSize: number): Promise<ort.InferenceSession> {
  const g = new GraphBuilder('sampler');
  const logits = g.input('logits', 'float32', ['B', vocabSize]);
  const seen = g.input('seen_ids', 'int64', ['B', 'S']);
  const column = (name: string, dtype: 'float32' | 'int64') =>
    g.op('Unsqueeze', [g.input(name, dtype, ['B']), g.int64s([1])]);
  const batch = g.op('Slice', [g.op('Shape', [logits]), g.int64s([0]), g.int64s([1])]);
  const row: Record<string, string> = {};
  for (const p of ROW_PARAMETERS) row[p.name] = column(p.name, p.type);
  const token = emitSampler(
    g,
    {
      logits,
      presence: emitPresenceFrom(g, seen, batch, vocabSize),
      row,
      uniform: column('uniform', 'float32'),
      additive: g.input('additive', 'float32', ['B', vocabSize]),
      blocked: g.input('blocked', 'bool', ['B', vocabSize]),
    },
    vocabSize,
  );
  g.output('token', g.op('Squeeze', [token, g.int64s([1])]), 'int64', ['B']);
  const dir = path.resolve('.cache/engine-tests');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `sampler-${vocabSize}-${process.pid}.onnx`);
  await writeFile(file, encodeModel(g.model()));
  return ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
}

export interface SamplerParams {
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  seen: number[];
  /** Added to the penalised logits (logit bias, presence/frequency penalties). */
  additive?: Float32Array;
  /** Ids that may not be chosen. */
  blocked?: number[];
  minP?: number;
}

/** Runs one row of logits against many uniforms (one batch row each); returns the chosen ids. */
export function sampleMany(
  session: ort.InferenceSession,
  logits: Float32Array,
  uniforms: Float32Array,
  p: SamplerParams,
): Promise<number[]> {
  return sampleRows(
    session,
    logits,
    Array.from(uniforms, (u) => ({ u, p })),
  );
}

/** One batch row per entry, each with its own uniform and parameters, all on the same logits. */
export async function sampleRows(
  session: ort.InferenceSession,
  logits: Float32Array,
  rows: { u: number; p: SamplerParams }[],
): Promise<number[]> {
  const B = rows.length;
  const V = logits.length;
  const all = new Float32Array(B * V);
  for (let b = 0; b < B; b++) all.set(logits, b * V);
  // seen_ids is [B, S]: pad shorter rows by repeating their first id (or 0 when nothing is seen
  // and the penalty is 1, where presence has no effect).
  const S = Math.max(0, ...rows.map((r) => r.p.seen.length));
  const seen = new BigInt64Array(B * S);
  rows.forEach((r, b) => {
    for (let j = 0; j < S; j++) seen[b * S + j] = BigInt(r.p.seen[j] ?? r.p.seen[0] ?? 0);
  });
  const column = (f: (p: SamplerParams) => number) => Float32Array.from(rows, (r) => f(r.p));
  const out = await session.run({
    logits: new ort.Tensor('float32', all, [B, V]),
    seen_ids: new ort.Tensor('int64', seen, [B, S]),
    repetition_penalty: new ort.Tensor(
      'float32',
      column((p) => p.repetitionPenalty),
      [B],
    ),
    temperature: new ort.Tensor(
      'float32',
      column((p) => p.temperature),
      [B],
    ),
    top_k: new ort.Tensor(
      'int64',
      BigInt64Array.from(rows, (r) => BigInt(r.p.topK)),
      [B],
    ),
    top_p: new ort.Tensor(
      'float32',
      column((p) => p.topP),
      [B],
    ),
    uniform: new ort.Tensor(
      'float32',
      Float32Array.from(rows, (r) => r.u),
      [B],
    ),
    additive: new ort.Tensor(
      'float32',
      Float32Array.from({ length: B * V }, (_, i) => rows[Math.floor(i / V)]?.p.additive?.[i % V] ?? 0),
      [B, V],
    ),
    blocked: new ort.Tensor(
      'bool',
      Array.from({ length: B * V }, (_, i) => rows[Math.floor(i / V)]?.p.blocked?.includes(i % V) ?? false),
      [B, V],
    ),
    // Applied outside the sampler (as the additive table): neutral here.
    presence_penalty: new ort.Tensor('float32', new Float32Array(B), [B]),
    frequency_penalty: new ort.Tensor('float32', new Float32Array(B), [B]),
    min_p: new ort.Tensor(
      'float32',
      column((p) => p.minP ?? 0),
      [B],
    ),
  });
  return Array.from(out.token?.data as BigInt64Array, Number);
}

/** The distribution the sampler should draw from, computed independently in float64. */
export function expectedDistribution(logits: Float32Array, p: SamplerParams): Float64Array {
  const V = logits.length;
  const seen = new Set(p.seen);
  const blocked = new Set(p.blocked ?? []);
  const x = Array.from(logits, (l, id) => {
    const penalised = !seen.has(id) ? l : l > 0 ? l / p.repetitionPenalty : l * p.repetitionPenalty;
    if (blocked.has(id)) return Number.NEGATIVE_INFINITY;
    return penalised + (p.additive?.[id] ?? 0);
  });
  const probs = new Float64Array(V);
  if (p.temperature === 0) {
    probs[x.indexOf(Math.max(...x))] = 1;
    return probs;
  }
  // min-p: ids less likely than min_p times the top one are out (before top-k and top-p).
  const best = Math.max(...x);
  const minP = p.minP ?? 0;
  x.forEach((v, id) => {
    if (minP > 0 && (v - best) / p.temperature < Math.log(minP)) x[id] = Number.NEGATIVE_INFINITY;
  });
  const order = x.map((_, id) => id).sort((a, b) => (x[b] as number) - (x[a] as number) || a - b);
  const k = p.topK === 0 ? V : Math.min(p.topK, V);
  const top = order.slice(0, k);
  const maxLogit = x[top[0] as number] as number;
  const w = top.map((id) => Math.exp(((x[id] as number) - maxLogit) / p.temperature));
  const massK = w.reduce((a, b) => a + b, 0);
  let before = 0;
  let kept = 0;
  const keptIds: number[] = [];
  top.forEach((id, i) => {
    if (before < p.topP * massK) {
      keptIds.push(id);
      kept += w[i] as number;
    }
    before += w[i] as number;
  });
  keptIds.forEach((id) => {
    probs[id] = (w[top.indexOf(id)] as number) / kept;
  });
  return probs;
}
