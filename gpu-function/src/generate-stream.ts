// One admitted generation request as an NDJSON stream (frames in shared/src/protocol/generate.ts):
// heartbeats while it waits for the model load or its turn, token frames as the engine yields
// chunks (tagged with the choice index), then exactly one done frame. A request's units (see
// request-units.ts) join the batch as the scheduler admits them and run side by side. A client
// that goes away aborts the request's signal, which drops its rows within one chunk.
import { ApiError } from '../../shared/src/errors.ts';
import type {
  ChoiceDone,
  DoneFrame,
  FinishReason,
  GenerateFrame,
  GenerateRequest,
  Timings,
} from '../../shared/src/protocol/generate.ts';
import { encodeFrame } from '../../shared/src/protocol/ndjson.ts';
import { rowValues } from '../../shared/src/protocol/parameters.ts';
import { randomSeed } from './engine/prng.ts';
import type { EngineResult, GenerationEngine } from './engine-port.ts';
import { errorMessage, type Logger } from './log.ts';
import type { ServiceMetrics } from './metrics.ts';
import type { ModelHost } from './model-host.ts';
import type { Admission, RequestUnit } from './request-units.ts';
import type { Scheduler } from './scheduler.ts';
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
  admission: Admission,
  deps: StreamDeps,
  clientSignal: AbortSignal,
  onFinished: () => void,
): ReadableStream<Uint8Array> {
  const { host, scheduler, metrics, log } = deps;
  const { ticket, units } = admission;
  const gone = new AbortController();
  // A unit that fails stops its siblings.
  const failed = new AbortController();
  const signal = AbortSignal.any([gone.signal, clientSignal, deps.shutdownSignal, failed.signal]);
  const t0 = performance.now();
  const timings: Timings = { queue_ms: 0, load_ms: 0, prefill_ms: 0, decode_ms: 0, total_ms: 0 };
  const promptTokens = req.prompts.reduce((n, p) => n + p.length, 0);
  const seed = req.sampling.seed ?? randomSeed();
  const choices: (ChoiceDone | undefined)[] = new Array(req.prompts.length * req.n).fill(undefined);
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

      const doneFrame = (finish: FinishReason, error?: DoneFrame['error']): DoneFrame => {
        const all = choices.map(
          (c, index): ChoiceDone => c ?? { index, finish_reason: finish, completion_tokens: 0 },
        );
        return {
          type: 'done',
          finish_reason: (all[0] as ChoiceDone).finish_reason,
          prompt_tokens: promptTokens,
          completion_tokens: completion,
          ...(all.length > 1 ? { choices: all } : {}),
          seed,
          timings,
          ...(error ? { error } : {}),
        };
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
          choices: choices.length,
          ...timings,
          ...(frame.error ? { error: frame.error.message } : {}),
        });
      };

      let started = false;
      const runUnit = async (engine: GenerationEngine, unit: RequestUnit, i: number) => {
        const tq = performance.now();
        await ticket.turn(i, signal);
        if (!started) {
          started = true;
          enterPhase(null);
          timings.queue_ms = Math.round(performance.now() - tq);
        }
        metrics.queueWaitSeconds.set(scheduler.lastWaitS);
        try {
          const it = engine.generate(
            {
              promptIds: req.prompts[unit.prompt] as number[],
              maxNewTokens: req.stopping.max_new_tokens,
              // The per-row parameters travel under their table names (ROW_PARAMETERS).
              row: rowValues(req.sampling),
              logitBias: req.sampling.logit_bias,
              ignoreEos: req.stopping.ignore_eos,
              minTokens: req.stopping.min_tokens,
              seed,
              stopIds: req.stopping.stop_ids,
              n: unit.n,
              firstSample: unit.firstSample,
              logprobs: req.output.logprobs ?? null,
              // A prompt is scored once, by the unit holding its first sample.
              scorePrompt: req.output.score_prompt === true && unit.firstSample === 0,
            },
            signal,
          );
          const base = unit.prompt * req.n + unit.firstSample;
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
            const { index, ids, logprobs, promptLogprobs } = step.value;
            if (promptLogprobs) send({ type: 'prompt', prompt: unit.prompt, logprobs: promptLogprobs });
            if (ids.length > 0) {
              completion += ids.length;
              metrics.completionTokens.inc({}, ids.length);
              const choice = base + index;
              send({
                type: 'tokens',
                ...(choices.length > 1 ? { index: choice } : {}),
                ids,
                ...(logprobs ? { logprobs } : {}),
              });
            }
          }
          for (const c of result.choices) {
            choices[base + c.index] = {
              index: base + c.index,
              finish_reason: c.finishReason,
              completion_tokens: c.completionTokens,
            };
          }
          timings.prefill_ms = Math.max(timings.prefill_ms, Math.round(result.prefillMs));
          timings.decode_ms = Math.max(timings.decode_ms, Math.round(result.decodeMs));
          metrics.bytesPerToken.set(result.bytesPerToken);
        } finally {
          ticket.done(i);
        }
      };

      const run = async () => {
        let engine: GenerationEngine | null = host.ready;
        if (!engine) {
          enterPhase('loading');
          const tl = performance.now();
          engine = await untilAborted(host.ensureReady(), signal);
          timings.load_ms = Math.round(performance.now() - tl);
        }
        if (ticket.mustWait(0)) enterPhase('queued');
        const ready = engine;
        await Promise.all(
          units.map((unit, i) =>
            runUnit(ready, unit, i).catch((err: unknown) => {
              failed.abort(err);
              throw err;
            }),
          ),
        );
        metrics.promptTokens.inc({}, promptTokens);
        finish(doneFrame('length'));
      };

      log.info('generate.start', {
        id,
        prompts: req.prompts.length,
        n: req.n,
        prompt_tokens: promptTokens,
        max_new_tokens: req.stopping.max_new_tokens,
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
            finish(
              doneFrame('cancelled', { message: 'The service is shutting down.', code: 'shutting_down' }),
            );
            return;
          }
          const cause = failed.signal.aborted ? failed.signal.reason : err;
          if (!(cause instanceof WeightsError) && !(cause instanceof ApiError)) {
            log.error('generate.failed', { id, error: errorMessage(cause) });
          }
          finish(doneFrame('error', publicError(cause)));
        })
        .finally(() => {
          clearInterval(beat);
          ticket.doneAll();
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
