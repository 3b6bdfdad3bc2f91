// Everything the proof uses of the engine and of the forward graph, in one place, so a change
// of the engine's API touches this file only:
//   - GenerationEngine.open / generate / onRun / close (the batched engine: concurrent
//     generate() calls share runs of the graph);
//   - openForwardSession (forward.onnx) for the logits checks;
//   - the session options the engine's worker uses, for the placement probe, which opens the
//     same graphs in a child process to read onnxruntime's verbose log.

import type * as ort from 'onnxruntime-node';
import { GenerationEngine } from '../../gpu-function/src/engine/engine.ts';
import type { RunReport } from '../../gpu-function/src/engine/protocol.ts';
import { sessionOptionsFor } from '../../gpu-function/src/engine/session.ts';
import { type ForwardSession, openForwardSession } from '../../gpu-function/src/model/forward-session.ts';
import { writeGraph } from '../../gpu-function/src/model-folder/graphs.ts';

export type Provider = 'cuda' | 'cpu';

/** onnxruntime's name of the provider, as its logs and profiles print it. */
export const ORT_PROVIDER_NAME: Record<Provider, string> = {
  cuda: 'CUDAExecutionProvider',
  cpu: 'CPUExecutionProvider',
};

/** The options the engine opens the generation graph with (placement depends on them). */
export const engineSessionOptions = (provider: Provider): ort.InferenceSession.SessionOptions =>
  sessionOptionsFor(provider);

/** The graph files of a converted folder, built as the engine and the forward session build them. */
export async function graphFiles(modelDir: string): Promise<{ generate: string; forward: string }> {
  return { generate: await writeGraph(modelDir, 'generate'), forward: await writeGraph(modelDir, 'forward') };
}

export function openForward(modelDir: string, provider: Provider): Promise<ForwardSession> {
  return openForwardSession(modelDir, engineSessionOptions(provider));
}

export interface GenerateCall {
  promptIds: number[];
  maxNewTokens: number;
  temperature: number;
  seed?: number;
  /** Caps every chunk (exercises the cache hand-over between runs). */
  maxChunk?: number;
}

export interface GenerateOutcome {
  ids: number[];
  finishReason: string;
  completionTokens: number;
  /** From generate() to the first ids. */
  firstTokenMs: number;
  totalMs: number;
  boundaryBytesPerToken: number;
  chunkSizes: number[];
}

/** One run of the generation graph, as the engine reports it. */
export type RunRecord = Omit<RunReport, 'requests'>;

export interface EngineHandle {
  provider: string;
  dtype: string;
  createMs: number;
  /** Every run since open (or since the last clearRuns). */
  runs: RunRecord[];
  clearRuns(): void;
  generate(call: GenerateCall): Promise<GenerateOutcome>;
  close(): Promise<void>;
}

export async function openEngine(modelDir: string, provider: Provider): Promise<EngineHandle> {
  const engine = await GenerationEngine.open(modelDir, { provider });
  const runs: RunRecord[] = [];
  engine.onRun((r) => {
    runs.push({
      kind: r.kind,
      batch: r.batch,
      steps: r.steps,
      tokens: r.tokens,
      ms: r.ms,
      boundaryBytes: r.boundaryBytes,
      kvBytes: r.kvBytes,
    });
  });
  return {
    provider: engine.provider,
    dtype: engine.info.dtype,
    createMs: engine.info.createMs,
    runs,
    clearRuns: () => {
      runs.length = 0;
    },
    async generate(call) {
      const { maxChunk, ...request } = call;
      const stream = engine.generate(request, maxChunk ? { maxChunk } : {});
      const ids: number[] = [];
      for await (const chunk of stream) ids.push(...chunk.ids);
      const r = await stream.result;
      return {
        ids,
        finishReason: r.finishReason,
        completionTokens: r.completionTokens,
        firstTokenMs: r.timings.firstTokenMs,
        totalMs: r.timings.totalMs,
        boundaryBytesPerToken: r.boundaryBytesPerToken,
        chunkSizes: r.chunkSizes,
      };
    },
    close: () => engine.close(),
  };
}
