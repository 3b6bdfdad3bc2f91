// The engine's worker thread: owns the onnxruntime session and the running batch. Requests
// arrive as messages at any time; they join at the next chunk boundary, and each chunk's ids
// are posted as soon as its run returns. The key/value cache stays here; only ids and small
// reports cross to the main thread.

import { setImmediate as nextTurn } from 'node:timers/promises';
import { parentPort } from 'node:worker_threads';
import type { ModelConfig } from '../model/config.ts';
import { pastKeyName } from '../model/generation-io.ts';
import { BatchRunner, type LoadedModel, type Newcomer } from './batch-runner.ts';
import type { ChunkTiming } from './chunk-timer.ts';
import type { FromWorker, ToWorker, WorkerError } from './protocol.ts';
import { openSession } from './session.ts';

if (!parentPort) throw new Error('worker.ts must run as a worker thread');
const port = parentPort;

const post = (m: FromWorker) => port.postMessage(m);
const asError = (err: unknown): WorkerError =>
  err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) };

let model: LoadedModel | undefined;
let runner: BatchRunner | undefined;
let closing = false;
const incoming: Newcomer[] = [];
let wake: (() => void) | null = null;

function cacheDtype(session: LoadedModel['session'], config: ModelConfig): 'float32' | 'float16' {
  const meta = session.inputMetadata.find((m) => m.name === pastKeyName(0));
  const type = meta?.isTensor ? meta.type : undefined;
  if (type !== 'float32' && type !== 'float16') {
    throw new Error(`not a generation graph for this config (${config.numLayers} layers)`);
  }
  return type;
}

async function open(msg: Extract<ToWorker, { type: 'open' }>, timing: ChunkTiming): Promise<void> {
  try {
    const opened = await openSession(msg.modelPath, msg.options);
    const dtype = cacheDtype(opened.session, msg.config);
    model = { session: opened.session, config: msg.config, dtype };
    runner = new BatchRunner(model, timing, {
      admitted: (id, prefillMs, promptLogprobs) =>
        post({ type: 'admitted', id, prefillMs, ...(promptLogprobs ? { promptLogprobs } : {}) }),
      tokens: (id, index, ids, logprobs) =>
        post({ type: 'tokens', id, index, ids, ...(logprobs ? { logprobs } : {}) }),
      rowDone: (id, index, outcome) => post({ type: 'row-done', id, index, outcome }),
      run: (report) => post({ type: 'run', report }),
      failed: (id, error) => post({ type: 'failed', id, error: asError(error) }),
    });
    post({
      type: 'opened',
      info: {
        provider: opened.provider,
        fallbackReason: opened.fallbackReason,
        createMs: opened.createMs,
        dtype,
      },
    });
    void serve(runner);
  } catch (err) {
    post({ type: 'open-failed', error: asError(err) });
  }
}

/** The batch loop: admit newcomers, drop cancelled rows, decode one chunk; sleep when idle. */
async function serve(r: BatchRunner): Promise<void> {
  while (!closing) {
    if (r.size === 0 && incoming.length === 0) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = null;
      continue;
    }
    // session.run holds the thread; let queued messages (newcomers, close) in between chunks.
    await nextTurn();
    r.dropCancelled();
    const newcomers = incoming.splice(0).filter((c) => {
      if (!c.cancelled()) return true;
      for (let index = 0; index < c.request.n; index++) {
        const outcome = { finishReason: 'cancelled', stopTokenId: null, completionTokens: 0 } as const;
        post({ type: 'row-done', id: c.id, index, outcome });
      }
      return false;
    });
    try {
      if (newcomers.length > 0) await r.admit(newcomers);
      await r.step();
    } catch (err) {
      r.failAll(err);
    }
  }
  await model?.session.release();
  model = undefined;
  post({ type: 'closed' });
  port.close();
}

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'open':
      void open(msg, msg.timing);
      return;
    case 'add': {
      const flag = new Int32Array(msg.cancel);
      if (!runner) {
        post({ type: 'failed', id: msg.id, error: { name: 'Error', message: 'no model is open' } });
        return;
      }
      incoming.push({
        id: msg.id,
        request: msg.request,
        maxChunk: msg.maxChunk,
        cancelled: () => Atomics.load(flag, 0) !== 0,
      });
      wake?.();
      return;
    }
    case 'close':
      closing = true;
      if (wake) wake();
      else if (!runner) {
        post({ type: 'closed' });
        port.close();
      }
      return;
  }
});
