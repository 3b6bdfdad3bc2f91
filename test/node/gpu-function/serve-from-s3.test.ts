// The GPU function end to end: the tiny fixture converted by the real converter, uploaded to a
// real S3-compatible server on loopback, served by the real process with the real engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest } from '../../../shared/src/signing.ts';
import {
  convertTinyModel,
  goldenGreedy,
  HAVE_FIXTURES,
  removeScratch,
  scratchDir,
  storageEnv,
  uploadTo,
} from './helpers/model.ts';
import { LocalS3 } from './helpers/s3rver.ts';
import { doneFrame, ServiceProcess, streamedIds, TEST_SECRET } from './helpers/service.ts';

describe.skipIf(!HAVE_FIXTURES)('GPU function serving a model from S3', () => {
  let s3: LocalS3;
  let dir: string;
  let env: Record<string, string>;
  let golden: { prompt_ids: number[]; new_tokens: number[] };
  let modelBytes = 0;
  let modelDir: string;
  const services: ServiceProcess[] = [];

  beforeAll(async () => {
    s3 = await LocalS3.create();
    dir = await scratchDir('serve');
    modelDir = await convertTinyModel(dir);
    await uploadTo(s3, modelDir, 'tiny/v1');
    env = storageEnv(s3.endpoint, s3.bucket, 'tiny/v1', `${dir}/cache`);
    golden = await goldenGreedy();
  });

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await s3?.dispose();
    await removeScratch(dir);
  });

  const greedyRequest = () => ({ prompt_ids: golden.prompt_ids, max_new_tokens: 20, temperature: 0 });

  it('refuses unsigned, expired and tampered requests with 401 and does no work', async () => {
    const svc = await ServiceProcess.start(env);
    services.push(svc);
    const body = new TextEncoder().encode(JSON.stringify(greedyRequest()));

    const missing = await svc.generate(greedyRequest(), { headers: {} });
    expect(missing.status).toBe(401);
    expect(missing.error?.error).toMatchObject({ type: 'authentication_error', code: 'signature_missing' });

    const old = await signRequest(TEST_SECRET, 'POST', svc.url('/v1/generate'), body, Date.now() - 120_000);
    const expired = await svc.generate(greedyRequest(), { headers: old });
    expect(expired.status).toBe(401);
    expect(expired.error?.error.code).toBe('signature_expired');

    const signedOther = await signRequest(TEST_SECRET, 'POST', svc.url('/v1/generate'), body);
    const tampered = await svc.generate(
      { ...greedyRequest(), max_new_tokens: 2000 },
      { headers: signedOther },
    );
    expect(tampered.status).toBe(401);
    expect(tampered.error?.error.code).toBe('signature_body_mismatch');

    const wrongKey = await signRequest(
      'another-secret-of-thirty-two-bytes!',
      'POST',
      svc.url('/v1/generate'),
      body,
    );
    expect((await svc.generate(greedyRequest(), { headers: wrongKey })).status).toBe(401);

    // Nothing was loaded or queued for any of them.
    expect(svc.events('model.load_start')).toHaveLength(0);
    const m = await svc.metrics();
    expect(m.get('gpu_generate_requests_total{outcome="unauthorized"}')).toBe(4);
    expect(m.get('gpu_model_loads_total{result="ok"}')).toBeUndefined();
    const ready = await svc.signedGet('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'not_loaded' });
  });

  it('cold start: concurrent first requests share one load and stream the golden greedy tokens', async () => {
    const svc = services[0]!;
    const bodies = [greedyRequest(), greedyRequest(), greedyRequest()];
    const results = await Promise.all(bodies.map((b) => svc.generate(b)));
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('application/x-ndjson');
      expect(streamedIds(r.frames)).toEqual(golden.new_tokens);
      const done = doneFrame(r.frames);
      expect(done).toMatchObject({ finish_reason: 'length', prompt_tokens: 12, completion_tokens: 20 });
      expect(done.timings.total_ms).toBeGreaterThan(0);
    }
    // Heartbeats kept the waiting streams alive while the model loaded.
    expect(results[0]!.frames[0]).toEqual({ type: 'heartbeat', phase: 'loading' });

    expect(svc.events('model.load_start')).toHaveLength(1);
    const m = await svc.metrics();
    modelBytes = m.get('gpu_model_bytes')!;
    expect(modelBytes).toBeGreaterThan(30_000_000);
    expect(m.get('gpu_model_loads_total{result="ok"}')).toBe(1);
    expect(m.get('gpu_load_bytes_fetched_total')).toBe(modelBytes);
    expect(m.get('gpu_completion_tokens_total')).toBe(60);
    expect(m.get('gpu_generate_requests_total{outcome="length"}')).toBe(3);
    expect(m.get('gpu_engine_bytes_per_token')).toBeGreaterThan(0);
    // They were decoded together: the decode runs held more than one row on average.
    const decodeRuns = m.get('gpu_engine_runs_total{kind="decode"}')!;
    expect(m.get('gpu_engine_run_rows_total{kind="decode"}')!).toBeGreaterThan(decodeRuns);
    for (const phase of ['manifest', 'fetch', 'verify', 'session']) {
      expect(m.get(`gpu_load_phase_seconds{phase="${phase}"}`)).toBeGreaterThan(0);
    }
    const ready = await svc.signedGet('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', provider: 'cpu' });
  });

  it('refuses a replayed request', async () => {
    const svc = services[0]!;
    const body = new TextEncoder().encode(JSON.stringify({ prompt_ids: [5, 6], max_new_tokens: 1 }));
    const headers = await signRequest(TEST_SECRET, 'POST', svc.url('/v1/generate'), body);
    expect((await svc.generate({ prompt_ids: [5, 6], max_new_tokens: 1 }, { headers })).status).toBe(200);
    const replay = await svc.generate({ prompt_ids: [5, 6], max_new_tokens: 1 }, { headers });
    expect(replay.status).toBe(401);
    expect(replay.error?.error.code).toBe('signature_replayed');
  });

  it('answers malformed input and over-long requests with 400', async () => {
    const svc = services[0]!;
    const tooLong = await svc.generate({ prompt_ids: new Array(2000).fill(5), max_new_tokens: 49 });
    expect(tooLong.status).toBe(400);
    expect(tooLong.error?.error).toMatchObject({ code: 'context_length_exceeded', param: 'max_new_tokens' });
    const badId = await svc.generate({ prompt_ids: [5, -1] });
    expect(badId.status).toBe(400);
    expect(badId.error?.error.param).toBe('prompt_ids');
    const unknown = await svc.generate({ prompt_ids: [5], prompt: 'hi' });
    expect(unknown.status).toBe(400);
    const notJson = new TextEncoder().encode('{"prompt_ids": [5');
    const res = await fetch(`${svc.base}/v1/generate`, {
      method: 'POST',
      body: notJson,
      headers: await signRequest(TEST_SECRET, 'POST', svc.url('/v1/generate'), notJson),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
  });

  it('warm start: a new process reuses the verified cache without downloading', async () => {
    const first = services[0]!;
    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);

    const svc = await ServiceProcess.start(env);
    services.push(svc);
    const r = await svc.generate(greedyRequest());
    expect(streamedIds(r.frames)).toEqual(golden.new_tokens);
    expect(svc.events('load.cache_hit')).toHaveLength(1);
    expect(svc.events('load.fetch_start')).toHaveLength(0);
    const m = await svc.metrics();
    expect(m.get('gpu_load_bytes_fetched_total') ?? 0).toBe(0);
    expect(m.get('gpu_load_bytes_reused_total')).toBe(modelBytes);
    expect(svc.output).not.toContain(TEST_SECRET);
  });

  it('serves a local converted folder for development, checked against its manifest', async () => {
    const svc = await ServiceProcess.start({ MODEL_URI: modelDir });
    services.push(svc);
    const r = await svc.generate({ ...greedyRequest(), max_new_tokens: 4 });
    expect(streamedIds(r.frames)).toEqual(golden.new_tokens.slice(0, 4));
    expect(svc.events('load.manifest')).toHaveLength(0);
  });
});
