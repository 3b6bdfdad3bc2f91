// Scheduling and the process lifecycle of the real service: SIGTERM drains, a drain that runs
// out of time cancels, idle exit, a disconnecting client frees the engine, a full queue
// answers 503 with Retry-After.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateFrame } from '../../../shared/src/protocol/generate.ts';
import {
  convertTinyModel,
  HAVE_FIXTURES,
  removeScratch,
  scratchDir,
  storageEnv,
  uploadTo,
} from './helpers/model.ts';
import { LocalS3 } from './helpers/s3rver.ts';
import { doneFrame, ServiceProcess, streamedIds } from './helpers/service.ts';

describe.skipIf(!HAVE_FIXTURES)('GPU function lifecycle and scheduling', () => {
  let s3: LocalS3;
  let dir: string;
  let running: ServiceProcess[] = [];

  beforeAll(async () => {
    s3 = await LocalS3.create();
    dir = await scratchDir('lifecycle');
    await uploadTo(s3, await convertTinyModel(dir), 'tiny/v1');
  });

  afterEach(async () => {
    await Promise.all(running.map((s) => s.stop()));
    running = [];
  });

  afterAll(async () => {
    await s3?.dispose();
    await removeScratch(dir);
  });

  /** A service that loads at boot (sharing one cache); resolves once the model is ready. */
  async function startReady(extra: Record<string, string> = {}): Promise<ServiceProcess> {
    const svc = await ServiceProcess.start({
      ...storageEnv(s3.endpoint, s3.bucket, 'tiny/v1', join(dir, 'cache')),
      PRELOAD: '1',
      ...extra,
    });
    running.push(svc);
    await svc.waitForLog('model.ready');
    return svc;
  }

  /** Resolves with the first frame of this type. */
  function firstFrame(type: GenerateFrame['type'], phase?: string) {
    let resolve: () => void = () => {};
    const seen = new Promise<void>((r) => {
      resolve = r;
    });
    const onFrame = (f: GenerateFrame) => {
      if (f.type === type && (phase === undefined || (f.type === 'heartbeat' && f.phase === phase)))
        resolve();
    };
    return { seen, onFrame };
  }

  it('SIGTERM drains: the stream in flight finishes, new requests get 503, then the process exits 0', async () => {
    const svc = await startReady({ DRAIN_TIMEOUT_S: '30' });
    const tokens = firstFrame('tokens');
    const inFlight = svc.generate(
      { prompt_ids: [5, 6, 7], max_new_tokens: 40, temperature: 0 },
      { onFrame: tokens.onFrame },
    );
    await tokens.seen;
    svc.child.kill('SIGTERM');
    await svc.waitForLog('lifecycle.draining');

    const refused = await svc.generate({ prompt_ids: [5], max_new_tokens: 1 });
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const ready = await svc.signedGet('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'draining' });

    const r = await inFlight;
    expect(doneFrame(r.frames)).toMatchObject({ finish_reason: 'length', completion_tokens: 40 });
    expect(streamedIds(r.frames)).toHaveLength(40);
    expect(await svc.exited).toEqual({ code: 0, signal: null });
    expect(svc.events('exit')[0]).toMatchObject({ reason: 'sigterm' });
  });

  it('a drain that runs out of time ends the stream with a cancelled done frame', async () => {
    const svc = await startReady({ DRAIN_TIMEOUT_S: '0.5' });
    const tokens = firstFrame('tokens');
    const inFlight = svc.generate(
      { prompt_ids: [5, 6, 7], max_new_tokens: 1500, temperature: 0 },
      { onFrame: tokens.onFrame },
    );
    await tokens.seen;
    const t0 = Date.now();
    svc.child.kill('SIGTERM');
    const r = await inFlight;
    const done = doneFrame(r.frames);
    expect(done.finish_reason).toBe('cancelled');
    expect(done.error?.code).toBe('shutting_down');
    expect(done.completion_tokens).toBeLessThan(1500);
    expect(await svc.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('exits by itself after IDLE_TIMEOUT_S without requests, never during a stream', async () => {
    const svc = await startReady({ IDLE_TIMEOUT_S: '1' });
    const r = await svc.generate({ prompt_ids: [5, 6, 7], max_new_tokens: 40, temperature: 0 });
    expect(doneFrame(r.frames)).toMatchObject({ finish_reason: 'length', completion_tokens: 40 });
    expect(await svc.exited).toEqual({ code: 0, signal: null });
    const done = Date.parse(svc.events('generate.done')[0]!.time);
    const idle = Date.parse(svc.events('lifecycle.idle_exit')[0]!.time);
    expect(idle - done).toBeGreaterThanOrEqual(900);
    expect(svc.events('exit')[0]).toMatchObject({ reason: 'idle' });
  });

  it('a client that disconnects stops its generation and frees the engine', async () => {
    const svc = await startReady();
    const controller = new AbortController();
    const tokens = firstFrame('tokens');
    const abandoned = svc
      .generate(
        { prompt_ids: [5, 6, 7], max_new_tokens: 1500, temperature: 0 },
        { signal: controller.signal, onFrame: tokens.onFrame },
      )
      .catch((err: unknown) => err);
    await tokens.seen;
    controller.abort();
    await abandoned;
    await svc.waitForLog('generate.client_gone');

    // 1500 tokens would keep the engine busy for many seconds; the next request runs at once.
    const next = await svc.generate({ prompt_ids: [5, 6, 7], max_new_tokens: 4, temperature: 0 });
    const done = doneFrame(next.frames);
    expect(done.finish_reason).toBe('length');
    expect(done.timings.total_ms).toBeLessThan(8000);
    const m = await svc.metrics();
    expect(m.get('gpu_generate_requests_total{outcome="client_gone"}')).toBe(1);
    expect(m.get('gpu_completion_tokens_total')).toBeLessThan(200);
  });

  it('queues when the batch is full and answers 503 with Retry-After when the line is full', async () => {
    const svc = await startReady({ QUEUE_MAX: '1', MAX_BATCH: '1' });
    const firstTokens = firstFrame('tokens');
    const first = svc.generate(
      // Long enough to still be running while the others arrive: nucleus sampling takes the
      // engine's sorted path (about 10 ms a token here, against 1 ms for greedy).
      { prompt_ids: [5, 6, 7], max_new_tokens: 400, temperature: 1, top_p: 0.9, seed: 1 },
      { onFrame: firstTokens.onFrame },
    );
    await firstTokens.seen;
    const queued = firstFrame('heartbeat', 'queued');
    const second = svc.generate({ prompt_ids: [8, 9], max_new_tokens: 3 }, { onFrame: queued.onFrame });
    await queued.seen;
    expect((await svc.metrics()).get('gpu_queue_depth')).toBe(1);

    const third = await svc.generate({ prompt_ids: [10], max_new_tokens: 3 });
    expect(third.status).toBe(503);
    expect(third.error?.error.type).toBe('service_unavailable');
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

    const [a, b] = await Promise.all([first, second]);
    expect(doneFrame(a.frames).finish_reason).toBe('length');
    expect(doneFrame(b.frames)).toMatchObject({ finish_reason: 'length', completion_tokens: 3 });
    expect(doneFrame(b.frames).timings.queue_ms).toBeGreaterThan(0);
    const m = await svc.metrics();
    expect(m.get('gpu_generate_requests_total{outcome="queue_full"}')).toBe(1);
    expect(m.get('gpu_queue_depth')).toBe(0);
  });
});
