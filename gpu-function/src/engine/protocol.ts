// Messages between the engine (main thread) and its worker thread, which owns the
// onnxruntime session and the running batch: session.run blocks its thread for a whole chunk.

import type { ModelConfig } from '../model/config.ts';
import type { ChunkTiming } from './chunk-timer.ts';
import type { ResolvedRequest } from './request.ts';
import type { Provider, SessionOptions } from './session.ts';

export type ToWorker =
  | { type: 'open'; modelPath: string; config: ModelConfig; options: SessionOptions; timing: ChunkTiming }
  | {
      type: 'add';
      id: number;
      request: ResolvedRequest;
      /** Cap on the chunk length while this request runs (tests); 0 = none. */
      maxChunk: number;
      /** Int32Array over it: [0] != 0 asks the worker to drop the request before its next run. */
      cancel: SharedArrayBuffer;
    }
  | { type: 'close' };

export interface OpenedInfo {
  provider: Provider;
  fallbackReason?: string;
  createMs: number;
  dtype: 'float32' | 'float16';
}

export interface WorkerError {
  name: string;
  message: string;
}

/** A token's log-probability and the most likely alternatives at its position ([id, logprob]). */
export interface TokenLogprob {
  logprob: number;
  top: [number, number][];
}

export type RowFinish = 'length' | 'stop' | 'eos' | 'cancelled';

/** How one sample (row) of a request ended. */
export interface RowOutcome {
  finishReason: RowFinish;
  /** The end-of-text or stop id that ended it, if one did. */
  stopTokenId: number | null;
  /** Tokens produced, the ending id included. */
  completionTokens: number;
}

/** One run of the graph, for metrics and per-request accounting. */
export interface RunReport {
  kind: 'prefill' | 'decode';
  /** Rows in the run. */
  batch: number;
  /** Steps decoded (1 for a prefill). */
  steps: number;
  /** Tokens the rows produced (decode) or consumed (prefill, padding excluded). */
  tokens: number;
  ms: number;
  /** Inputs + outputs, in bytes. */
  boundaryBytes: number;
  /** The batch's key/value cache after the run. */
  kvBytes: number;
  /** Requests with a row in the run. */
  requests: number[];
}

export type FromWorker =
  | { type: 'opened'; info: OpenedInfo }
  | { type: 'open-failed'; error: WorkerError }
  /** The request's rows joined the batch (after their prefill). */
  | { type: 'admitted'; id: number; prefillMs: number; promptLogprobs?: (TokenLogprob | null)[] }
  | { type: 'tokens'; id: number; index: number; ids: number[]; logprobs?: TokenLogprob[] }
  | { type: 'row-done'; id: number; index: number; outcome: RowOutcome }
  | { type: 'run'; report: RunReport }
  | { type: 'failed'; id: number; error: WorkerError }
  | { type: 'closed' };
