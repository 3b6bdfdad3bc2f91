// Continuous batching inside the worker thread. Every row (one sample of one request) has its
// own prompt length, positions, cache length, sampling parameters, seed stream, stop ids and
// penalty state; all rows decode together, one chunk of steps per run of the generation graph.
//
//   admit:  newcomers' prompts (all but the last token) are prefilled, batched and
//           left-padded, then their rows join the batch: the cache is re-laid right-aligned.
//           The last prompt token is each row's first input, so n samples share one prefill
//           and each draws its first token from its own stream.
//   step:   one decode chunk for every row; rows that finished or were cancelled leave at once.
//
// A row's result never depends on its neighbours: padding is masked, positions are per row,
// and a row's k-th token always uses the k-th uniform of its own stream.

import * as ort from 'onnxruntime-node';
import { ROW_PARAMETERS } from '../../../shared/src/protocol/parameters.ts';
import type { ModelConfig } from '../model/config.ts';
import { FINISHED_ROW_TOKEN, GEN, LOGPROB_TOP_K } from '../model/generation-io.ts';
import { ChunkTimer, type ChunkTiming } from './chunk-timer.ts';
import { KvBatch, type KvDtype, type RowSource } from './kv-batch.ts';
import { sampleSeed, Xoshiro128 } from './prng.ts';
import type { RowOutcome, RunReport, TokenLogprob } from './protocol.ts';
import type { ResolvedRequest } from './request.ts';

export interface LoadedModel {
  session: ort.InferenceSession;
  config: ModelConfig;
  dtype: KvDtype;
}

/** A request waiting to join the batch. */
export interface Newcomer {
  id: number;
  request: ResolvedRequest;
  /** Cap on chunk steps while its rows run (tests); 0 = none. */
  maxChunk: number;
  cancelled(): boolean;
}

export interface RunnerHooks {
  /** `promptLogprobs`: the prompt's scores when asked for (the first token's is null). */
  admitted(id: number, prefillMs: number, promptLogprobs?: (TokenLogprob | null)[]): void;
  /** `logprobs` (when the request asked for them): one per id. */
  tokens(id: number, index: number, ids: number[], logprobs?: TokenLogprob[]): void;
  rowDone(id: number, index: number, outcome: RowOutcome): void;
  run(report: RunReport): void;
  failed(id: number, error: unknown): void;
}

interface Row {
  id: number;
  index: number;
  rng: Xoshiro128;
  /** Per-row scalar parameters by table name (ROW_PARAMETERS). */
  row: Record<string, number>;
  logitBias: [number, number][];
  /** The ids that end the row: its stop ids, and end-of-text unless it ignores it. */
  stopIds: number[];
  /** Generated ids (for the presence and frequency penalties), when either is on. */
  generated: number[] | null;
  /** Tokens to produce before a stop id may end the row. */
  minTokens: number;
  /** Alternatives to report per token; null: no log-probabilities. */
  logprobs: number | null;
  /** Prompt + output, when the repetition penalty is on (it is sent every run). */
  seen: number[] | null;
  remaining: number;
  produced: number;
  /** Real cache entries (the row's last `len` columns). */
  len: number;
  /** The next input token (not in the cache yet); its position is `len`. */
  pending: number;
  maxChunk: number;
  cancelled(): boolean;
}

/** Padded prompt tokens one prefill run may hold (bounds its activations). */
const PREFILL_TOKENS = 2048;

const int64 = (values: ArrayLike<number>, dims: number[]) =>
  new ort.Tensor(
    'int64',
    BigInt64Array.from(values as number[], (v) => BigInt(v)),
    dims,
  );
const f32 = (values: number[]) => new ort.Tensor('float32', Float32Array.from(values), [values.length]);
const tensorBytes = (t: ort.Tensor) => (t.data as ArrayBufferView).byteLength;

/** The per-row parameter inputs: one [batch] tensor each, a row's missing value its default. */
function rowFeeds(rows: readonly Readonly<Record<string, number>>[]): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const p of ROW_PARAMETERS) {
    const values = rows.map((r) => r[p.name] ?? (p.spec.default as number));
    feeds[p.name] = p.type === 'int64' ? int64(values, [rows.length]) : f32(values);
  }
  return feeds;
}

/**
 * What pads a row's stop ids: one of its own (a repeat changes nothing). A row with none (it
 * ignores end-of-text and has no stop ids) pads with -1, which no sampled id equals; its
 * min_tokens_left is 0, so the padding never blocks an id either.
 */
function stopPad(r: Row): number {
  return r.stopIds[0] ?? -1;
}

/** [rows x width] row-major, each row right-aligned and left-padded with `pad(row)`. */
function padLeft(rows: readonly (readonly number[])[], width: number, pad: (r: number) => number): number[] {
  const out: number[] = [];
  rows.forEach((row, r) => {
    for (let i = row.length; i < width; i++) out.push(pad(r));
    out.push(...row);
  });
  return out;
}

/** A [rows, width] tensor of left-padded rows; width defaults to the longest row. */
function padded(
  type: 'int64' | 'float32',
  rows: readonly (readonly number[])[],
  pad: (r: number) => number,
  width = Math.max(0, ...rows.map((r) => r.length)),
): ort.Tensor {
  const values = padLeft(rows, width, pad);
  const dims = [rows.length, width];
  return type === 'int64' ? int64(values, dims) : new ort.Tensor('float32', Float32Array.from(values), dims);
}

/** One position's log-probability and its k best alternatives, from the graph's outputs. */
function logprobAt(
  logprob: number,
  topValues: Float32Array,
  topIds: BigInt64Array,
  position: number,
  k: number,
): TokenLogprob {
  const at = position * LOGPROB_TOP_K;
  const top: [number, number][] = [];
  for (let i = 0; i < k; i++) top.push([Number(topIds[at + i]), topValues[at + i] as number]);
  return { logprob, top };
}

export class BatchRunner {
  private readonly model: LoadedModel;
  private readonly hooks: RunnerHooks;
  private readonly timer: ChunkTimer;
  private rows: Row[] = [];
  private kv: KvBatch;

  constructor(model: LoadedModel, timing: ChunkTiming, hooks: RunnerHooks) {
    this.model = model;
    this.hooks = hooks;
    this.timer = new ChunkTimer(timing);
    this.kv = KvBatch.empty(model.config, model.dtype, 0);
  }

  get size(): number {
    return this.rows.length;
  }

  /** Prefills newcomers (in order) and merges their rows into the batch. */
  async admit(newcomers: readonly Newcomer[]): Promise<void> {
    const sources: RowSource[] = this.rows.map((r, i) => ({ source: this.kv, row: i, len: r.len }));
    const joined: Row[] = [];
    for (const group of this.prefillGroups(newcomers)) {
      let prefill: { kv: KvBatch; ms: number; scores?: TokenLogprob[][] } | null = null;
      try {
        prefill = await this.prefill(group.filter((c) => c.request.promptIds.length > 1));
      } catch (err) {
        for (const c of group) this.hooks.failed(c.id, err);
        continue;
      }
      let prefillRow = 0;
      for (const c of group) {
        const prefix = c.request.promptIds.length - 1;
        const source = prefix > 0 && prefill ? prefill.kv : this.kv;
        const row = prefix > 0 ? prefillRow++ : 0;
        const scores = c.request.scorePrompt
          ? [null, ...(prefix > 0 && prefill ? (prefill.scores?.[row] ?? []) : [])]
          : undefined;
        this.hooks.admitted(c.id, prefill?.ms ?? 0, scores);
        if (c.request.maxNewTokens === 0) {
          // Scored only: nothing to generate, so no row joins.
          for (let j = 0; j < c.request.n; j++) {
            this.hooks.rowDone(c.id, j, { finishReason: 'length', stopTokenId: null, completionTokens: 0 });
          }
          continue;
        }
        for (let j = 0; j < c.request.n; j++) {
          sources.push({ source, row, len: prefix });
          joined.push(this.newRow(c, j));
        }
      }
    }
    if (joined.length === 0) return;
    const columns = Math.max(0, ...sources.map((s) => s.len));
    this.kv = KvBatch.gather(this.model.config, this.model.dtype, sources, columns);
    this.rows.push(...joined);
  }

  /** Rows whose request was cancelled leave now. */
  dropCancelled(): void {
    const gone = this.rows.filter((r) => r.cancelled());
    for (const r of gone) {
      this.hooks.rowDone(r.id, r.index, {
        finishReason: 'cancelled',
        stopTokenId: null,
        completionTokens: r.produced,
      });
    }
    if (gone.length > 0) this.keep((r) => !gone.includes(r));
  }

  /** Fails every row (a run threw): the batch starts empty again. */
  failAll(error: unknown): void {
    const ids = new Set(this.rows.map((r) => r.id));
    this.rows = [];
    this.kv = KvBatch.empty(this.model.config, this.model.dtype, 0);
    for (const id of ids) this.hooks.failed(id, error);
  }

  /** One decode chunk for every row. */
  async step(): Promise<void> {
    const rows = this.rows;
    if (rows.length === 0) return;
    const { eosTokenId } = this.model.config;
    const B = rows.length;
    const S = this.kv.columns;
    const steps = this.timer.next({
      newcomer: rows.some((r) => r.produced === 0),
      maxRemaining: Math.max(...rows.map((r) => r.remaining)),
      rowCap: Math.min(...rows.map((r) => r.maxChunk || Number.POSITIVE_INFINITY)),
      room: Math.max(1, Math.max(...rows.map((r) => r.len + r.remaining)) - S),
    });

    const uniforms = new Float32Array(steps * B);
    for (let s = 0; s < steps; s++) {
      rows.forEach((r, b) => {
        uniforms[s * B + b] = r.rng.nextUniform();
      });
    }
    const feeds: Record<string, ort.Tensor> = {
      ...this.kv.feeds(),
      [GEN.inputIds]: int64(
        rows.map((r) => r.pending),
        [B, 1],
      ),
      [GEN.positionIds]: int64(
        rows.map((r) => r.len),
        [B, 1],
      ),
      [GEN.attentionMask]: padded(
        'int64',
        rows.map((r) => new Array<number>(r.len + 1).fill(1)),
        () => 0,
        S + 1,
      ),
      [GEN.maxSteps]: new ort.Tensor('int64', BigInt64Array.of(BigInt(steps)), []),
      [GEN.uniforms]: new ort.Tensor('float32', uniforms, [steps, B]),
      ...rowFeeds(rows.map((r) => r.row)),
      // Padding repeats an id the row already has (or 0 where the penalty is off: no effect).
      [GEN.seenIds]: padded(
        'int64',
        rows.map((r) => r.seen ?? []),
        (b) => rows[b]?.seen?.[0] ?? 0,
      ),
      [GEN.stopIds]: padded(
        'int64',
        rows.map((r) => r.stopIds),
        (b) => stopPad(rows[b] as Row),
      ),
      [GEN.countedIds]: padded(
        'int64',
        rows.map((r) => r.generated ?? []),
        () => 0,
      ),
      [GEN.countedWeights]: padded(
        'float32',
        rows.map((r) => (r.generated ?? []).map(() => 1)),
        () => 0,
      ),
      [GEN.biasIds]: padded(
        'int64',
        rows.map((r) => r.logitBias.map(([id]) => id)),
        (b) => rows[b]?.logitBias[0]?.[0] ?? 0,
      ),
      [GEN.biasValues]: padded(
        'float32',
        rows.map((r) => r.logitBias.map(([, v]) => v)),
        (b) => rows[b]?.logitBias[0]?.[1] ?? 0,
      ),
      [GEN.minTokensLeft]: int64(
        rows.map((r) => (r.stopIds.length === 0 ? 0 : Math.max(0, r.minTokens - r.produced))),
        [B],
      ),
      [GEN.done]: new ort.Tensor('bool', new Array<boolean>(B).fill(false), [B]),
      [GEN.budget]: int64(
        rows.map((r) => r.remaining),
        [B],
      ),
      [GEN.scoreTargets]: int64([], [B, 0]),
    };
    const producedBefore = rows.reduce((n, r) => n + r.produced, 0);
    const t0 = performance.now();
    const out = await this.model.session.run(feeds);
    const ms = performance.now() - t0;
    const tokens = out[GEN.tokens] as ort.Tensor;
    const ran = Number(tokens.dims[0]);
    this.timer.observe(ran, ms);
    this.kv = KvBatch.fromOutputs(this.model.config, this.model.dtype, out);

    const data = tokens.data as BigInt64Array;
    const chosen = (out[GEN.tokenLogprobs] as ort.Tensor).data as Float32Array;
    const topValues = (out[GEN.topLogprobs] as ort.Tensor).data as Float32Array;
    const topIds = (out[GEN.topIds] as ort.Tensor).data as BigInt64Array;
    const results = rows.map((r, b) => {
      const ids: number[] = [];
      const logprobs: TokenLogprob[] = [];
      let outcome: RowOutcome | null = null;
      for (let s = 0; s < ran; s++) {
        const id = Number(data[s * B + b]);
        if (id === FINISHED_ROW_TOKEN) break;
        r.produced++;
        r.remaining--;
        if (r.stopIds.includes(id)) {
          outcome = {
            finishReason: id === eosTokenId ? 'eos' : 'stop',
            stopTokenId: id,
            completionTokens: r.produced,
          };
          break;
        }
        ids.push(id);
        if (r.logprobs !== null) {
          logprobs.push(logprobAt(chosen[s * B + b] as number, topValues, topIds, s * B + b, r.logprobs));
        }
        r.pending = id;
        if (r.remaining === 0) {
          outcome = { finishReason: 'length', stopTokenId: null, completionTokens: r.produced };
          break;
        }
      }
      r.len += ran;
      if (r.seen) r.seen.push(...ids);
      if (r.generated) r.generated.push(...ids);
      return { ids, outcome, logprobs };
    });
    // The run is reported before its tokens, so a request that ends here has it counted.
    const produced = rows.reduce((n, r) => n + r.produced, 0) - producedBefore;
    this.report('decode', feeds, out, { batch: B, steps: ran, tokens: produced, ms });
    const finished = new Set<Row>();
    rows.forEach((r, b) => {
      const { ids, outcome, logprobs } = results[b] as (typeof results)[number];
      if (ids.length > 0) this.hooks.tokens(r.id, r.index, ids, r.logprobs === null ? undefined : logprobs);
      if (outcome) {
        finished.add(r);
        this.hooks.rowDone(r.id, r.index, outcome);
      }
    });
    if (finished.size > 0) this.keep((r) => !finished.has(r));
  }

  /** Keeps the rows `keep` accepts, compacting the cache to the longest of them. */
  private keep(keep: (r: Row) => boolean): void {
    const sources: RowSource[] = [];
    const rows: Row[] = [];
    this.rows.forEach((r, i) => {
      if (!keep(r)) return;
      rows.push(r);
      sources.push({ source: this.kv, row: i, len: r.len });
    });
    const columns = Math.max(0, ...rows.map((r) => r.len));
    this.kv = KvBatch.gather(this.model.config, this.model.dtype, sources, columns);
    this.rows = rows;
  }

  private newRow(c: Newcomer, j: number): Row {
    const req = c.request;
    const prefix = req.promptIds.length - 1;
    return {
      id: c.id,
      index: j,
      rng: new Xoshiro128(sampleSeed(req.seed, req.firstSample + j)),
      row: req.row,
      logitBias: req.logitBias,
      stopIds: req.ignoreEos
        ? req.stopIds.filter((id) => id !== this.model.config.eosTokenId)
        : [this.model.config.eosTokenId, ...req.stopIds],
      generated: req.row.presence_penalty !== 0 || req.row.frequency_penalty !== 0 ? [] : null,
      minTokens: req.minTokens,
      logprobs: req.logprobs,
      seen: req.row.repetition_penalty !== 1 ? [...req.promptIds] : null,
      remaining: req.maxNewTokens,
      produced: 0,
      len: prefix,
      pending: req.promptIds[prefix] as number,
      maxChunk: c.maxChunk,
      cancelled: c.cancelled,
    };
  }

  /** Consecutive newcomers whose padded prefixes fit one prefill run (scored ones apart). */
  private *prefillGroups(newcomers: readonly Newcomer[]): Generator<Newcomer[]> {
    let group: Newcomer[] = [];
    let width = 0;
    for (const c of newcomers) {
      const len = c.request.promptIds.length - 1;
      const w = Math.max(width, len);
      // Scoring costs every position's logits: rows that ask for it run on their own.
      const mixes = group.length > 0 && (group[0] as Newcomer).request.scorePrompt !== c.request.scorePrompt;
      if (group.length > 0 && (mixes || (group.length + 1) * w > PREFILL_TOKENS)) {
        yield group;
        group = [];
        width = 0;
      }
      group.push(c);
      width = Math.max(width, len);
    }
    if (group.length > 0) yield group;
  }

  /** Runs the prompts minus their last token through the graph; returns their cache. */
  private async prefill(
    group: readonly Newcomer[],
  ): Promise<{ kv: KvBatch; ms: number; scores?: TokenLogprob[][] } | null> {
    if (group.length === 0) return null;
    const prompts = group.map((c) => c.request.promptIds.slice(0, -1));
    const score = group.some((c) => c.request.scorePrompt);
    const B = prompts.length;
    const T = Math.max(...prompts.map((p) => p.length));
    const zeros = (n: number) => new Array<number>(n).fill(0);
    const feeds: Record<string, ort.Tensor> = {
      ...KvBatch.empty(this.model.config, this.model.dtype, B).feeds(),
      [GEN.inputIds]: padded('int64', prompts, () => 0),
      [GEN.positionIds]: padded(
        'int64',
        prompts.map((p) => p.map((_, i) => i)),
        () => 0,
      ),
      [GEN.attentionMask]: padded(
        'int64',
        prompts.map((p) => p.map(() => 1)),
        () => 0,
      ),
      // One greedy step: its token is discarded (the rows' first tokens come from decoding).
      [GEN.maxSteps]: new ort.Tensor('int64', BigInt64Array.of(1n), []),
      [GEN.uniforms]: new ort.Tensor('float32', new Float32Array(B), [1, B]),
      // One greedy step (temperature 0), every other parameter at its default.
      ...rowFeeds(zeros(B).map(() => ({ temperature: 0 }))),
      [GEN.seenIds]: int64([], [B, 0]),
      [GEN.stopIds]: int64([], [B, 0]),
      [GEN.countedIds]: int64([], [B, 0]),
      [GEN.countedWeights]: new ort.Tensor('float32', new Float32Array(0), [B, 0]),
      [GEN.biasIds]: int64([], [B, 0]),
      [GEN.biasValues]: new ort.Tensor('float32', new Float32Array(0), [B, 0]),
      [GEN.minTokensLeft]: int64(zeros(B), [B]),
      [GEN.done]: new ort.Tensor('bool', new Array<boolean>(B).fill(false), [B]),
      [GEN.budget]: int64(
        zeros(B).map(() => 1),
        [B],
      ),
      // Each input position is scored against the prompt's next token.
      [GEN.scoreTargets]: padded(
        'int64',
        score ? group.map((c) => c.request.promptIds.slice(1)) : group.map(() => []),
        () => 0,
      ),
    };
    const t0 = performance.now();
    const out = await this.model.session.run(feeds);
    const ms = performance.now() - t0;
    const kv = KvBatch.fromOutputs(this.model.config, this.model.dtype, out);
    const tokens = prompts.reduce((n, p) => n + p.length, 0);
    this.report('prefill', feeds, out, { batch: B, steps: 1, tokens, ms }, group);
    if (!score) return { kv, ms };
    const values = (out[GEN.promptLogprobs] as ort.Tensor).data as Float32Array;
    const topValues = (out[GEN.promptTopLogprobs] as ort.Tensor).data as Float32Array;
    const topIds = (out[GEN.promptTopIds] as ort.Tensor).data as BigInt64Array;
    const scores = group.map((c, b) => {
      const len = (prompts[b] as number[]).length;
      const k = c.request.logprobs ?? 0;
      return Array.from({ length: len }, (_, i): TokenLogprob => {
        const t = b * T + (T - len) + i; // right-aligned
        return logprobAt(values[t] as number, topValues, topIds, t, k);
      });
    });
    return { kv, ms, scores };
  }

  private report(
    kind: RunReport['kind'],
    feeds: Record<string, ort.Tensor>,
    out: Record<string, unknown>,
    r: { batch: number; steps: number; tokens: number; ms: number },
    group?: readonly Newcomer[],
  ): void {
    let boundaryBytes = 0;
    for (const t of Object.values(feeds)) boundaryBytes += tensorBytes(t);
    for (const t of Object.values(out)) boundaryBytes += tensorBytes(t as ort.Tensor);
    const requests = [...new Set((group ?? this.rows).map((x) => x.id))];
    this.hooks.run({ kind, ...r, boundaryBytes, kvBytes: this.kv.bytes, requests });
  }
}
