// The generation engine: prompt ids in, generated ids out, as an async iterator.
//
//   const engine = await GenerationEngine.open('models/jslm');           // worker + session
//   const stream = engine.generate({ promptIds, maxNewTokens: 64, temperature: 0.7, seed: 1 }, { signal });
//   for await (const { ids } of stream) send(ids);                       // one item per chunk
//   const { finishReason, completionTokens, timings } = await stream.result;
//
// onnxruntime runs in a worker thread. Requests run one at a time in arrival order (callers
// queue in front of the engine); aborting the signal, or leaving the loop early, stops the
// request before its next chunk.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { unavailable } from '../../../shared/src/errors.ts';
import { type ModelConfig, parseModelConfig } from '../model/config.ts';
import { AsyncQueue } from './async-queue.ts';
import { type ChunkPolicy, DEFAULT_CHUNK_POLICY, validateChunkPolicy } from './chunk-schedule.ts';
import type { DecodeOutcome } from './decode-loop.ts';
import type { FromWorker, OpenedInfo, ToWorker, WorkerError } from './protocol.ts';
import { type GenerationRequest, resolveRequest } from './request.ts';
import type { SessionOptions } from './session.ts';

export interface EngineOptions extends SessionOptions {
  chunkPolicy?: ChunkPolicy;
  /** The generation graph inside the model folder. Default model.onnx. */
  graphFile?: string;
}

export interface GenerationTimings {
  /** Waiting for earlier requests. */
  queueMs: number;
  /** Until the first ids reached the caller. */
  firstTokenMs: number;
  /** The first run: the prompt plus the first chunk. */
  prefillMs: number;
  /** All later runs. */
  decodeMs: number;
  totalMs: number;
}

export interface GenerationResult {
  finishReason: 'length' | 'stop' | 'eos';
  promptTokens: number;
  /** Tokens produced, including the end-of-text or stop id that ended generation. */
  completionTokens: number;
  /** That ending id (not yielded as content), or null. */
  stopTokenId: number | null;
  /** The seed used (the caller's, or a random one). */
  seed: number;
  runs: number;
  chunkSizes: number[];
  /** Inputs + outputs of every run, over completionTokens. */
  boundaryBytesPerToken: number;
  timings: GenerationTimings;
}

export interface GenerationStream extends AsyncIterable<{ ids: number[] }> {
  /** Settles when generation ends; rejects with the abort reason if cancelled. */
  readonly result: Promise<GenerationResult>;
}

export interface GenerateOptions {
  signal?: AbortSignal;
  /** This request's chunk sizes instead of the engine's (tests and benchmarks). */
  chunkPolicy?: ChunkPolicy;
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
  onChunk(ids: number[]): void;
  onDone(outcome: DecodeOutcome): void;
  onFailed(error: Error): void;
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
  private readonly policy: ChunkPolicy;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private tail: Promise<unknown> = Promise.resolve();
  private dead: Error | undefined;
  private readonly totals = { requests: 0, generatedTokens: 0, runs: 0, boundaryBytes: 0 };

  private constructor(
    modelDir: string,
    config: ModelConfig,
    worker: Worker,
    info: OpenedInfo,
    policy: ChunkPolicy,
  ) {
    this.modelDir = modelDir;
    this.config = config;
    this.worker = worker;
    this.info = info;
    this.policy = policy;
    worker.on('message', (m: FromWorker) => this.dispatch(m));
    const die = (err: Error) => {
      this.dead ??= err;
      for (const p of this.pending.values()) p.onFailed(err);
      this.pending.clear();
    };
    worker.on('error', die);
    worker.on('exit', (code) => die(new EngineClosedError(`engine worker exited (code ${code})`)));
  }

  /** Loads `dir/config.json` and the generation graph in a new worker thread. */
  static async open(modelDir: string, options: EngineOptions = {}): Promise<GenerationEngine> {
    const dir = path.resolve(modelDir);
    const config = parseModelConfig(JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')));
    const policy = validateChunkPolicy(options.chunkPolicy ?? DEFAULT_CHUNK_POLICY);
    const worker = new Worker(new URL('./worker.ts', import.meta.url));
    const { chunkPolicy: _, graphFile, ...sessionOptions } = options;
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
    const msg: ToWorker = {
      type: 'open',
      modelPath: path.join(dir, graphFile ?? 'model.onnx'),
      config,
      options: sessionOptions,
    };
    worker.postMessage(msg);
    try {
      return new GenerationEngine(dir, config, worker, await opened, policy);
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

  /**
   * Starts a request (after any running one). Throws an ApiError at once for an invalid
   * request, e.g. ContextLengthError when prompt + maxNewTokens exceeds the context window.
   */
  generate(request: GenerationRequest, opts: GenerateOptions = {}): GenerationStream {
    if (this.dead) throw unavailable('The generation engine is not running.', 5);
    const req = resolveRequest(request, {
      vocabSize: this.config.vocabSize,
      maxPositions: this.config.maxPositions,
    });
    const { signal } = opts;
    const policy = opts.chunkPolicy ? validateChunkPolicy(opts.chunkPolicy) : this.policy;
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const cancel = () => Atomics.store(flag, 0, 1);
    const chunks = new AsyncQueue<{ ids: number[] }>(cancel);
    signal?.addEventListener('abort', cancel, { once: true });
    if (signal?.aborted) cancel();
    const queuedAt = performance.now();

    const run = this.tail.then(
      () =>
        new Promise<{ outcome: DecodeOutcome; startedAt: number; firstChunkAt: number }>(
          (resolve, reject) => {
            const id = this.nextId++;
            const startedAt = performance.now();
            let firstChunkAt = 0;
            this.pending.set(id, {
              onChunk: (ids) => {
                firstChunkAt ||= performance.now();
                chunks.push({ ids });
              },
              onDone: (outcome) =>
                resolve({ outcome, startedAt, firstChunkAt: firstChunkAt || performance.now() }),
              onFailed: reject,
            });
            if (this.dead) {
              this.pending.delete(id);
              reject(this.dead);
              return;
            }
            const msg: ToWorker = {
              type: 'generate',
              id,
              request: req,
              policy,
              cancel: flag.buffer as SharedArrayBuffer,
            };
            this.worker.postMessage(msg);
          },
        ),
    );
    this.tail = run.catch(() => undefined);

    const result = run.then(({ outcome, startedAt, firstChunkAt }): GenerationResult => {
      const t = this.totals;
      t.requests++;
      t.generatedTokens += outcome.completionTokens;
      t.runs += outcome.runs;
      t.boundaryBytes += outcome.boundaryBytes;
      if (outcome.finishReason === 'cancelled') throw abortError(signal);
      const end = performance.now();
      return {
        finishReason: outcome.finishReason,
        promptTokens: req.promptIds.length,
        completionTokens: outcome.completionTokens,
        stopTokenId: outcome.stopTokenId,
        seed: req.seed,
        runs: outcome.runs,
        chunkSizes: outcome.chunkSizes,
        boundaryBytesPerToken:
          outcome.completionTokens > 0 ? outcome.boundaryBytes / outcome.completionTokens : 0,
        timings: {
          queueMs: startedAt - queuedAt,
          firstTokenMs: firstChunkAt - startedAt,
          prefillMs: outcome.firstRunMs,
          decodeMs: outcome.laterRunsMs,
          totalMs: end - startedAt,
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
    if (m.type !== 'chunk' && m.type !== 'done' && m.type !== 'failed') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === 'chunk') p.onChunk(m.ids);
    else {
      this.pending.delete(m.id);
      if (m.type === 'done') p.onDone(m.outcome);
      else p.onFailed(toError(m.error));
    }
  }

  /** Waits for the running request, releases the session and stops the worker. */
  async close(): Promise<void> {
    if (this.dead) return;
    await this.tail;
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
