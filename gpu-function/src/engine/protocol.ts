// Messages between the engine (main thread) and its worker thread, which owns the
// onnxruntime session: session.run blocks its thread for the whole chunk.

import type { ModelConfig } from '../model/config.ts';
import type { ChunkPolicy } from './chunk-schedule.ts';
import type { DecodeOutcome } from './decode-loop.ts';
import type { ResolvedRequest } from './request.ts';
import type { Provider, SessionOptions } from './session.ts';

export type ToWorker =
  | { type: 'open'; modelPath: string; config: ModelConfig; options: SessionOptions }
  | {
      type: 'generate';
      id: number;
      request: ResolvedRequest;
      policy: ChunkPolicy;
      /** Int32Array over it: [0] != 0 asks the worker to stop before its next run. */
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

export type FromWorker =
  | { type: 'opened'; info: OpenedInfo }
  | { type: 'open-failed'; error: WorkerError }
  | { type: 'chunk'; id: number; ids: number[] }
  | { type: 'done'; id: number; outcome: DecodeOutcome }
  | { type: 'failed'; id: number; error: WorkerError }
  | { type: 'closed' };
