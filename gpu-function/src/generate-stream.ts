// One admitted generation request as an NDJSON stream (frames in shared/src/protocol/generate.ts):
// heartbeats while it waits for the model load or its turn, token frames as the engine yields
// chunks, then exactly one done frame. A client that goes away aborts the request's signal,
// which stops the engine within one chunk and frees the slot.
import { ApiError } from '../../shared/src/errors.ts';
import type {
  DoneFrame,
  GenerateFrame,
  GenerateRequest,
  Timings,
} from '../../shared/src/protocol/generate.ts';
import { encodeFrame } from '../../shared/src/protocol/ndjson.ts';
import type { EngineResult, GenerationEngine } from './engine-port.ts';
import { errorMessage, type Logger } from './log.ts';
import type { ServiceMetrics } from './metrics.ts';
import type { ModelHost } from './model-host.ts';
import type { Scheduler, Ticket } from './scheduler.ts';
import { WeightsError } from './weights/weights-error.ts';

export interface StreamDeps {
  host: ModelHost;
  scheduler: Scheduler;
  metrics: ServiceMetrics;
  log: Logger;
  heartbeatMs: number;
  /** Aborted when a drain runs out of time. */
  shutdownSignal: AbortSignal;
}

class ClientGone extends Error {
  override name = 'ClientGone';
}

/** Resolves like `p`, or rejects when `signal` aborts first (`p` keeps running for others). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** What the client may read about a failure: our own clear errors, never internals. */
function publicError(err: unknown): { message: string; code: string } {
  if (err instanceof WeightsError) return { message: err.message, code: err.code };
  if (err instanceof ApiError) return { message: err.message, code: err.code ?? 'error' };
  return { message: 'Generation failed inside the GPU function.', code: 'internal_error' };
}

export function generationStream(
  id: string,
  req: GenerateRequest,
  ticket: Ticket,
  deps: StreamDeps,
  clientSignal: AbortSignal,
  onFinished: () => void,
): ReadableStream<Uint8Array> {
  const { host, scheduler, metrics, log } = deps;
  const gone = new AbortController();
  const signal = AbortSignal.any([gone.signal, clientSignal, deps.shutdownSignal]);
  const t0 = performance.now();
  const timings: Timings = { queue_ms: 0, load_ms: 0, prefill_ms: 0, decode_ms: 0, total_ms: 0 };
  let completion = 0;
  let open = true;

  return new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (frame: GenerateFrame) => {
        if (open) controller.enqueue(encodeFrame(frame));
      };
      let phase: 'loading' | 'queued' | null = null;
      const beat = setInterval(() => {
        if (phase) send({ type: 'heartbeat', phase });
      }, deps.heartbeatMs);
      const enterPhase = (p: 'loading' | 'queued' | null) => {
        phase = p;
        if (p) send({ type: 'heartbeat', phase: p });
      };

      const finish = (frame: DoneFrame) => {
        timings.total_ms = Math.round(performance.now() - t0);
        frame.timings = { ...timings };
        send(frame);
        metrics.requests.inc({ outcome: frame.finish_reason });
        log.info('generate.done', {
          id,
          finish_reason: frame.finish_reason,
          prompt_tokens: frame.prompt_tokens,
          completion_tokens: frame.completion_tokens,
          ...timings,
          ...(frame.error ? { error: frame.error.message } : {}),
        });
      };

      const run = async () => {
        let engine: GenerationEngine | null = host.ready;
        if (!engine) {
          enterPhase('loading');
          const tl = performance.now();
          engine = await untilAborted(host.ensureReady(), signal);
          timings.load_ms = Math.round(performance.now() - tl);
        }
        const tq = performance.now();
        if (ticket.mustWait) enterPhase('queued');
        await ticket.turn(signal);
        enterPhase(null);
        timings.queue_ms = Math.round(performance.now() - tq);
        metrics.active.set(scheduler.running);

        const it = engine.generate(
          {
            promptIds: req.prompt_ids,
            maxNewTokens: req.max_new_tokens,
            temperature: req.temperature,
            topP: req.top_p,
            topK: req.top_k,
            repetitionPenalty: req.repetition_penalty,
            ...(req.seed !== undefined ? { seed: req.seed } : {}),
            stopIds: req.stop_ids,
          },
          signal,
        );
        let result: EngineResult;
        for (;;) {
          const step = await it.next();
          if (step.done) {
            result = step.value;
            break;
          }
          if (signal.aborted) {
            await it.return?.(undefined as never);
            throw signal.reason;
          }
          if (step.value.length > 0) {
            completion += step.value.length;
            metrics.completionTokens.inc({}, step.value.length);
            send({ type: 'tokens', ids: step.value });
          }
        }
        timings.prefill_ms = Math.round(result.prefillMs);
        timings.decode_ms = Math.round(result.decodeMs);
        metrics.promptTokens.inc({}, result.promptTokens);
        metrics.bytesPerToken.set(result.bytesPerToken);
        // A cancelled result means the shutdown deadline stopped it (a gone client never gets here).
        finish({
          type: 'done',
          finish_reason: result.finishReason,
          prompt_tokens: result.promptTokens,
          completion_tokens: result.completionTokens,
          timings,
          ...(result.finishReason === 'cancelled'
            ? { error: { message: 'The service is shutting down.', code: 'shutting_down' } }
            : {}),
        });
      };

      log.info('generate.start', {
        id,
        prompt_tokens: req.prompt_ids.length,
        max_new_tokens: req.max_new_tokens,
        waiting: scheduler.waiting,
      });
      run()
        .catch((err: unknown) => {
          if (gone.signal.aborted || clientSignal.aborted) {
            metrics.requests.inc({ outcome: 'client_gone' });
            log.info('generate.client_gone', { id, completion_tokens: completion });
            return;
          }
          if (deps.shutdownSignal.aborted) {
            finish({
              type: 'done',
              finish_reason: 'cancelled',
              prompt_tokens: req.prompt_ids.length,
              completion_tokens: completion,
              timings,
              error: { message: 'The service is shutting down.', code: 'shutting_down' },
            });
            return;
          }
          if (!(err instanceof WeightsError) && !(err instanceof ApiError)) {
            log.error('generate.failed', { id, error: errorMessage(err) });
          }
          finish({
            type: 'done',
            finish_reason: 'error',
            prompt_tokens: req.prompt_ids.length,
            completion_tokens: completion,
            timings,
            error: publicError(err),
          });
        })
        .finally(() => {
          clearInterval(beat);
          ticket.done();
          metrics.active.set(scheduler.running);
          if (open) {
            open = false;
            controller.close();
          }
          onFinished();
        });
    },
    cancel() {
      open = false;
      gone.abort(new ClientGone('the client closed the connection'));
    },
  });
}
