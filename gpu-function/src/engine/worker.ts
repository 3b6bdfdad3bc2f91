// The engine's worker thread: owns the onnxruntime session and runs one request at a time,
// posting each chunk of ids as soon as its run returns. The key/value cache stays here
// between chunks; only ids cross to the main thread.

import { parentPort } from 'node:worker_threads';
import type { ModelConfig } from '../model/config.ts';
import { pastKeyName } from '../model/generation-io.ts';
import { decode, type LoadedModel } from './decode-loop.ts';
import type { FromWorker, ToWorker, WorkerError } from './protocol.ts';
import { openSession } from './session.ts';

if (!parentPort) throw new Error('worker.ts must run as a worker thread');
const port = parentPort;

const post = (m: FromWorker) => port.postMessage(m);
const asError = (err: unknown): WorkerError =>
  err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) };

let model: LoadedModel | undefined;

function cacheDtype(session: LoadedModel['session'], config: ModelConfig): 'float32' | 'float16' {
  const meta = session.inputMetadata.find((m) => m.name === pastKeyName(0));
  const type = meta?.isTensor ? meta.type : undefined;
  if (type !== 'float32' && type !== 'float16') {
    throw new Error(`model.onnx is not a generation graph for this config (${config.numLayers} layers)`);
  }
  return type;
}

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case 'open': {
      try {
        const opened = await openSession(msg.modelPath, msg.options);
        const dtype = cacheDtype(opened.session, msg.config);
        model = { session: opened.session, config: msg.config, dtype };
        post({
          type: 'opened',
          info: {
            provider: opened.provider,
            fallbackReason: opened.fallbackReason,
            createMs: opened.createMs,
            dtype,
          },
        });
      } catch (err) {
        post({ type: 'open-failed', error: asError(err) });
      }
      return;
    }
    case 'generate': {
      const flag = new Int32Array(msg.cancel);
      try {
        if (!model) throw new Error('no model is open');
        const outcome = await decode(model, msg.request, msg.policy, {
          onChunk: (c) => post({ type: 'chunk', id: msg.id, ids: c.ids }),
          cancelled: () => Atomics.load(flag, 0) !== 0,
        });
        post({ type: 'done', id: msg.id, outcome });
      } catch (err) {
        post({ type: 'failed', id: msg.id, error: asError(err) });
      }
      return;
    }
    case 'close': {
      await model?.session.release();
      model = undefined;
      post({ type: 'closed' });
      port.close();
      return;
    }
  }
}

// Messages are handled strictly in order (the engine sends one request at a time anyway).
let queue = Promise.resolve();
port.on('message', (msg: ToWorker) => {
  queue = queue.then(() => handle(msg));
});
