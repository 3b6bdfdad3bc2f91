// Adapts the generation engine (./engine/) to what the service needs (./engine-port.ts).
import { GenerationEngine as OnnxEngine } from './engine/engine.ts';
import type { EngineParams, EngineResult, GenerationEngine } from './engine-port.ts';
import type { Logger } from './log.ts';

/** Opens the engine on a verified model folder (worker thread + onnxruntime session). */
export async function openEngine(modelDir: string, log: Logger): Promise<GenerationEngine> {
  const engine = await OnnxEngine.open(modelDir);
  log.info('engine.opened', {
    provider: engine.provider,
    dtype: engine.info.dtype,
    create_ms: Math.round(engine.info.createMs),
    ...(engine.info.fallbackReason ? { cuda_unavailable: engine.info.fallbackReason } : {}),
  });
  return {
    provider: engine.provider,
    async *generate(params: EngineParams, signal: AbortSignal): AsyncGenerator<number[], EngineResult> {
      const stream = engine.generate(params, { signal });
      for await (const { ids } of stream) yield ids;
      const r = await stream.result;
      return {
        finishReason: r.finishReason,
        promptTokens: r.promptTokens,
        completionTokens: r.completionTokens,
        prefillMs: r.timings.prefillMs,
        decodeMs: r.timings.decodeMs,
        bytesPerToken: r.boundaryBytesPerToken,
      };
    },
    close: () => engine.close(),
  };
}
