// Opens the generation graph with the best execution provider present: CUDA when its provider
// library was installed next to onnxruntime-node (the container build downloads it), else the
// CPU. The choice is reported, never silent.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';

export type ProviderChoice = 'auto' | 'cuda' | 'cpu';
export type Provider = 'cuda' | 'cpu';

export interface SessionOptions {
  provider?: ProviderChoice;
  /** CPU threads for one op; default: every core (measured best for large matmuls). */
  intraOpNumThreads?: number;
  /**
   * Let onnxruntime repack weights into its matmul layout at load (default on). With packed
   * weights the CPU's batch-1 matmuls use every thread (about 2x faster decode on 2 cores,
   * bench:model); off keeps the weights memory-mapped from the file: session creation in
   * milliseconds instead of seconds, no second copy.
   */
  prepack?: boolean;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  provider: Provider;
  /** Why CUDA was not used, when it was wanted ('auto') but not possible. */
  fallbackReason?: string;
  createMs: number;
}

/** Whether onnxruntime-node's CUDA provider library is installed. */
export function cudaProviderInstalled(): boolean {
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
  const dir = path.join(path.dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
  return existsSync(path.join(dir, 'libonnxruntime_providers_cuda.so'));
}

/** The options the engine opens its graph with (placement depends on them; the GPU proof reuses them). */
export function sessionOptionsFor(
  provider: Provider,
  o: SessionOptions = {},
): ort.InferenceSession.SessionOptions {
  const session: Record<string, string> = {};
  if (o.prepack === false) session.disable_prepacking = '1';
  return {
    executionProviders: [provider],
    intraOpNumThreads: o.intraOpNumThreads ?? os.availableParallelism(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session },
  };
}

export async function openSession(modelPath: string, o: SessionOptions = {}): Promise<OpenedSession> {
  const choice = o.provider ?? 'auto';
  const t0 = performance.now();
  let fallbackReason: string | undefined;
  if (choice !== 'cpu') {
    if (cudaProviderInstalled()) {
      try {
        const session = await ort.InferenceSession.create(modelPath, sessionOptionsFor('cuda', o));
        return { session, provider: 'cuda', createMs: performance.now() - t0 };
      } catch (err) {
        fallbackReason = `CUDA execution provider failed: ${err instanceof Error ? err.message : String(err)}`;
      }
    } else {
      fallbackReason = 'the CUDA provider library of onnxruntime-node is not installed';
    }
    if (choice === 'cuda') throw new Error(`provider 'cuda' requested but ${fallbackReason}`);
  }
  const session = await ort.InferenceSession.create(modelPath, sessionOptionsFor('cpu', o));
  return { session, provider: 'cpu', fallbackReason, createMs: performance.now() - t0 };
}
