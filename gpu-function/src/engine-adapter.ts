// Adapts the generation engine (./engine/) to what the service needs (./engine-port.ts).
import { ApiError } from '../../shared/src/errors.ts';
import { EngineClosedError, type EngineOptions, GenerationEngine as OnnxEngine } from './engine/engine.ts';
import type { EngineChunk, EngineParams, EngineResult, GenerationEngine } from './engine-port.ts';
import type { Logger } from './log.ts';
import { kvBytesPerTokenOf } from './model/config.ts';

/** Opens the engine on a verified model folder (worker thread + onnxruntime session). */
export async function openEngine(
  modelDir: string,
  log: Logger,
  options: EngineOptions = {},
): Promise<GenerationEngine> {
  const engine = await OnnxEngine.open(modelDir, options);
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
    kvBytesPerToken: kvBytesPerTokenOf(engine.config, engine.info.dtype),
    async *generate(params: EngineParams, signal: AbortSignal): AsyncGenerator<EngineChunk, EngineResult> {
      let r: Awaited<ReturnType<OnnxEngine['generate']>['result']>;
      try {
        const stream = engine.generate(params, { signal });
        for await (const chunk of stream) yield chunk;
        r = await stream.result;
      } catch (err) {
        throw noteDeath(err);
      }
      return {
        choices: r.choices.map((c) => ({
          index: c.index,
          finishReason: c.finishReason,
          completionTokens: c.completionTokens,
        })),
        promptTokens: r.promptTokens,
        completionTokens: r.completionTokens,
        seed: r.seed,
        prefillMs: r.timings.prefillMs,
        decodeMs: r.timings.decodeMs,
        bytesPerToken: r.boundaryBytesPerToken,
      };
    },
    onRun(listener) {
      engine.onRun(({ requests: _, ...run }) => listener(run));
    },
    close: () => engine.close(),
  };
}
