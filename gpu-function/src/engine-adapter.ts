// Adapts the generation engine (./engine/) to what the service needs (./engine-port.ts).
import { ApiError } from '../../shared/src/errors.ts';
import { EngineClosedError, GenerationEngine as OnnxEngine } from './engine/engine.ts';
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
  let alive = true;
  // The worker thread died (it refuses work with a 503, or ended mid-request): the host drops
  // this engine so the next request opens a new one.
  const noteDeath = (err: unknown) => {
    if (err instanceof EngineClosedError || (err instanceof ApiError && err.status === 503)) {
      if (alive) log.error('engine.died', { error: err.message });
      alive = false;
    }
    return err;
  };
  return {
    provider: engine.provider,
    get alive() {
      return alive;
    },
    async *generate(params: EngineParams, signal: AbortSignal): AsyncGenerator<number[], EngineResult> {
      let r: Awaited<ReturnType<OnnxEngine['generate']>['result']>;
      try {
        const stream = engine.generate(params, { signal });
        for await (const { ids } of stream) yield ids;
        r = await stream.result;
      } catch (err) {
        throw noteDeath(err);
      }
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
