// The generation engine: prompt ids in, generated ids out, as an async iterator.
//
//   const engine = await GenerationEngine.open('models/jslm');               // worker + session
//   const stream = engine.generate({ promptIds, maxNewTokens: 64, temperature: 0.7, seed: 1, n: 2 }, { signal });
//   for await (const { index, ids } of stream) send(index, ids);             // per sample, per chunk
//   const { choices, completionTokens, timings } = await stream.result;
//
// onnxruntime runs in a worker thread that batches every request it has been given
// (continuous batching: requests join and leave between chunks). Admission control (how many
// rows, whose turn) belongs to the caller's queue in front of the engine. Aborting the
// signal, or leaving the loop early, drops the request's rows before the next chunk.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { unavailable } from '../../../shared/src/errors.ts';
import { type ModelConfig, parseModelConfig } from '../model/config.ts';
import { writeGraph } from '../model-folder/graphs.ts';
import { AsyncQueue } from './async-queue.ts';
import { type ChunkTiming, DEFAULT_CHUNK_TIMING, validateChunkTiming } from './chunk-timer.ts';
import type {
  FromWorker,
  OpenedInfo,
  RowOutcome,
  RunReport,
  TokenLogprob,
  ToWorker,
  WorkerError,
} from './protocol.ts';
import { type GenerationRequest, type ResolvedRequest, resolveRequest } from './request.ts';
import type { SessionOptions } from './session.ts';

export interface EngineOptions extends SessionOptions {
  chunkTiming?: ChunkTiming;
}

export interface GenerationTimings {
  /** From generate() until the rows joined the batch (their prefill included). */
  queueMs: number;
  /** Until the first ids reached the caller. */
  firstTokenMs: number;
  /** The prefill run that held this request's prompt. */
  prefillMs: number;
  /** Decode runs this request took part in. */
  decodeMs: number;
  totalMs: number;
}

export interface ChoiceResult {
  index: number;
  finishReason: 'length' | 'stop' | 'eos';
  /** Tokens produced, including the end-of-text or stop id that ended it. */
  completionTokens: number;
  /** That ending id (not yielded as content), or null. */
  stopTokenId: number | null;
}

export interface GenerationResult {
  /** Of the first sample (the whole story for n = 1; see `choices`). */
  finishReason: ChoiceResult['finishReason'];
  stopTokenId: number | null;
  promptTokens: number;
  /** All samples together. */
  completionTokens: number;
  choices: ChoiceResult[];
  /** The seed used (the caller's, or a random one). */
  seed: number;
  /** Decode runs this request took part in, and their chunk lengths. */
  runs: number;
  chunkSizes: number[];
  /** This request's share of the bytes every run moved across the boundary, per token. */
  boundaryBytesPerToken: number;
  timings: GenerationTimings;
}

export interface GenerationChunk {
  /** Sample index (0 .. n-1). */
  index: number;
  ids: number[];
  /** With `logprobs`: one per id. */
  logprobs?: TokenLogprob[];
  /**
   * With `scorePrompt`: the prompt's token scores (the first is null), in a first chunk of
   * their own (no ids), before any generated token.
   */
  promptLogprobs?: (TokenLogprob | null)[];
}

export interface GenerationStream extends AsyncIterable<GenerationChunk> {
  /** Settles when generation ends; rejects with the abort reason if cancelled. */
  readonly result: Promise<GenerationResult>;
}

export interface GenerateOptions {
  signal?: AbortSignal;
  /** Caps every chunk at this many steps while this request runs (tests and benchmarks). */
  maxChunk?: number;
}

export interface EngineMetrics {
  requests: number;
  generatedTokens: number;
  runs: number;
  /** Bytes that crossed the host/runtime boundary (run inputs + outputs). */
  boundaryBytes: number;
  boundaryBytesPerToken: number;
}

export class EngineClosedError extends Error {
  override name = 'EngineClosedError';
}

interface Pending {
  request: ResolvedRequest;
  chunks: AsyncQueue<GenerationChunk>;
  outcomes: (RowOutcome | undefined)[];
  left: number;
  queuedAt: number;
  admittedAt: number;
  firstChunkAt: number;
  prefillMs: number;
  decodeMs: number;
  runs: number;
  chunkSizes: number[];
  boundaryBytes: number;
  resolve(): void;
  reject(err: Error): void;
}

const toError = (e: WorkerError) => Object.assign(new Error(e.message), { name: e.name });

function abortError(signal: AbortSignal | undefined): unknown {
  return signal?.reason ?? new DOMException('The generation was cancelled.', 'AbortError');
}

export class GenerationEngine {
  readonly modelDir: string;
  readonly config: ModelConfig;
  readonly info: OpenedInfo;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private readonly runListeners = new Set<(r: RunReport) => void>();
  private nextId = 1;
  private dead: Error | undefined;
  private idle: (() => void) | null = null;
  private readonly totals = { requests: 0, generatedTokens: 0, runs: 0, boundaryBytes: 0 };

  private constructor(modelDir: string, config: ModelConfig, worker: Worker, info: OpenedInfo) {
    this.modelDir = modelDir;
    this.config = config;
    this.worker = worker;
    this.info = info;
    worker.on('message', (m: FromWorker) => this.dispatch(m));
    const die = (err: Error) => {
      this.dead ??= err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      this.idle?.();
    };
    worker.on('error', die);
    worker.on('exit', (code) => die(new EngineClosedError(`engine worker exited (code ${code})`)));
  }

  /**
   * Builds the generation graph for the model folder (config.json + manifest.json + weights)
   * and opens it in a new worker thread.
   */
  static async open(modelDir: string, options: EngineOptions = {}): Promise<GenerationEngine> {
    const dir = path.resolve(modelDir);
    const config = parseModelConfig(JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')));
    const timing = validateChunkTiming(options.chunkTiming ?? DEFAULT_CHUNK_TIMING);
    const modelPath = await writeGraph(dir, 'generate');
    const worker = new Worker(new URL('./worker.ts', import.meta.url));
    const { chunkTiming: _, ...sessionOptions } = options;
    const opened = new Promise<OpenedInfo>((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.type === 'opened') resolve(m.info);
        else if (m.type === 'open-failed') reject(toError(m.error));
        else return;
        worker.off('message', onMessage);
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
    worker.postMessage({
      type: 'open',
      modelPath,
      config,
      options: sessionOptions,
      timing,
    } satisfies ToWorker);
    try {
      return new GenerationEngine(dir, config, worker, await opened);
    } catch (err) {
      await worker.terminate();
      throw err;
    }
  }

  get provider(): OpenedInfo['provider'] {
    return this.info.provider;
  }

  metrics(): EngineMetrics {
    const t = this.totals;
    return { ...t, boundaryBytesPerToken: t.generatedTokens > 0 ? t.boundaryBytes / t.generatedTokens : 0 };
  }

  /** Calls `listener` after every run of the graph (batch size, steps, time, bytes). */
  onRun(listener: (r: RunReport) => void): () => void {
    this.runListeners.add(listener);
    return () => this.runListeners.delete(listener);
  }

  /**
   * Hands a request to the batch; it joins at the next chunk boundary. Throws an ApiError at
   * once for an invalid request, e.g. ContextLengthError when prompt + maxNewTokens exceeds
   * the context window.
   */
  generate(request: GenerationRequest, opts: GenerateOptions = {}): GenerationStream {
    if (this.dead) throw unavailable('The generation engine is not running.', 5);
    const req = resolveRequest(request, {
      vocabSize: this.config.vocabSize,
      maxPositions: this.config.maxPositions,
    });
    const { signal } = opts;
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const cancel = () => Atomics.store(flag, 0, 1);
    const chunks = new AsyncQueue<GenerationChunk>(cancel);
    signal?.addEventListener('abort', cancel, { once: true });
    if (signal?.aborted) cancel();
    const id = this.nextId++;

    const done = new Promise<Pending>((resolve, reject) => {
      const p: Pending = {
        request: req,
        chunks,
        outcomes: new Array(req.n).fill(undefined),
        left: req.n,
        queuedAt: performance.now(),
        admittedAt: 0,
        firstChunkAt: 0,
        prefillMs: 0,
        decodeMs: 0,
        runs: 0,
        chunkSizes: [],
        boundaryBytes: 0,
        resolve: () => resolve(p),
        reject,
      };
      this.pending.set(id, p);
    });
    this.worker.postMessage({
      type: 'add',
      id,
      request: req,
      maxChunk: opts.maxChunk ?? 0,
      cancel: flag.buffer as SharedArrayBuffer,
    } satisfies ToWorker);

    const result = done.then((p): GenerationResult => {
      const completionTokens = p.outcomes.reduce((n, o) => n + (o?.completionTokens ?? 0), 0);
      const t = this.totals;
      t.requests++;
      t.generatedTokens += completionTokens;
      if (p.outcomes.some((o) => o?.finishReason === 'cancelled')) throw abortError(signal);
      const choices = p.outcomes.map(
        (o, index): ChoiceResult => ({
          index,
          finishReason: (o as RowOutcome).finishReason as ChoiceResult['finishReason'],
          completionTokens: (o as RowOutcome).completionTokens,
          stopTokenId: (o as RowOutcome).stopTokenId,
        }),
      );
      const end = performance.now();
      const first = choices[0] as ChoiceResult;
      return {
        finishReason: first.finishReason,
        stopTokenId: first.stopTokenId,
        promptTokens: req.promptIds.length,
        completionTokens,
        choices,
        seed: req.seed,
        runs: p.runs,
        chunkSizes: p.chunkSizes,
        boundaryBytesPerToken: completionTokens > 0 ? p.boundaryBytes / completionTokens : 0,
        timings: {
          queueMs: (p.admittedAt || end) - p.queuedAt,
          firstTokenMs: (p.firstChunkAt || end) - p.queuedAt,
          prefillMs: p.prefillMs,
          decodeMs: p.decodeMs,
          totalMs: end - p.queuedAt,
        },
      };
    });
    result.then(
      () => chunks.close(),
      (err: unknown) => chunks.fail(err),
    );
    result.finally(() => signal?.removeEventListener('abort', cancel)).catch(() => undefined);
    // Callers that only iterate must not see an unhandled rejection from `result`.
    result.catch(() => undefined);
    return { result, [Symbol.asyncIterator]: () => chunks };
  }

  private dispatch(m: FromWorker): void {
    if (m.type === 'run') {
      this.account(m.report);
      return;
    }
    if (m.type !== 'admitted' && m.type !== 'tokens' && m.type !== 'row-done' && m.type !== 'failed') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    switch (m.type) {
      case 'admitted':
        p.admittedAt = performance.now();
        p.prefillMs = m.prefillMs;
        if (m.promptLogprobs) p.chunks.push({ index: 0, ids: [], promptLogprobs: m.promptLogprobs });
        return;
      case 'tokens':
        p.firstChunkAt ||= performance.now();
        p.chunks.push({ index: m.index, ids: m.ids, ...(m.logprobs ? { logprobs: m.logprobs } : {}) });
        return;
      case 'row-done':
        if (p.outcomes[m.index] === undefined) p.left--;
        p.outcomes[m.index] = m.outcome;
        if (p.left === 0) this.settle(m.id, () => p.resolve());
        return;
      case 'failed':
        this.settle(m.id, () => p.reject(toError(m.error)));
        return;
    }
  }

  private settle(id: number, how: () => void): void {
    this.pending.delete(id);
    how();
    if (this.pending.size === 0) this.idle?.();
  }

  private account(r: RunReport): void {
    const t = this.totals;
    t.runs++;
    t.boundaryBytes += r.boundaryBytes;
    const share = r.boundaryBytes / Math.max(1, r.requests.length);
    for (const id of r.requests) {
      const p = this.pending.get(id);
      if (!p) continue;
      p.boundaryBytes += share;
      if (r.kind === 'decode') {
        p.runs++;
        p.decodeMs += r.ms;
        p.chunkSizes.push(r.steps);
      }
    }
    for (const listener of this.runListeners) listener(r);
  }

  /** Waits for the requests in the engine, releases the session and stops the worker. */
  async close(): Promise<void> {
    if (this.dead) return;
    if (this.pending.size > 0) {
      await new Promise<void>((resolve) => {
        this.idle = resolve;
      });
    }
    if (this.dead) return;
    this.dead = new EngineClosedError('the engine is closed');
    const closed = new Promise<void>((resolve) => {
      this.worker.on('message', (m: FromWorker) => m.type === 'closed' && resolve());
      this.worker.once('exit', () => resolve());
    });
    this.worker.postMessage({ type: 'close' } satisfies ToWorker);
    await closed;
    await this.worker.terminate();
  }
}
