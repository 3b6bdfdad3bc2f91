// Weight loading when storage misbehaves: the object server stopping mid-download, a process
// killed mid-download, a stalled connection, a corrupted object and wrong credentials. The real
// service loads the real converted model from s3rver, through a loopback proxy where the
// network has to misbehave.

import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  convertTinyModel,
  goldenGreedy,
  HAVE_FIXTURES,
  removeScratch,
  s3Client,
  scratchDir,
  storageEnv,
  uploadTo,
} from './helpers/model.ts';
import { LocalS3 } from './helpers/s3rver.ts';
import { doneFrame, ServiceProcess, streamedIds } from './helpers/service.ts';
import { TcpProxy } from './helpers/tcp-proxy.ts';

const PART_MB = 1;

describe.skipIf(!HAVE_FIXTURES)('weight loading faults', () => {
  let s3: LocalS3;
  let proxy: TcpProxy;
  let dir: string;
  let modelDir: string;
  let golden: { prompt_ids: number[]; new_tokens: number[] };
  let running: ServiceProcess[] = [];
  let cacheCount = 0;

  beforeAll(async () => {
    s3 = await LocalS3.create();
    proxy = await TcpProxy.start(() => s3.port);
    dir = await scratchDir('faults');
    modelDir = await convertTinyModel(dir);
    await uploadTo(s3, modelDir, 'tiny/v1');
    golden = await goldenGreedy();
  });

  afterEach(async () => {
    proxy.bytesPerSecond = null;
    proxy.stallCount = 0;
    await Promise.all(running.map((s) => s.stop()));
    running = [];
  });

  afterAll(async () => {
    await proxy?.close();
    await s3?.dispose();
    await removeScratch(dir);
  });

  /** A service reading s3://models/<prefix> through the proxy, with its own empty cache. */
  async function start(prefix: string, extra: Record<string, string> = {}, cache?: string) {
    const cacheDir = cache ?? join(dir, `cache-${cacheCount++}`);
    const svc = await ServiceProcess.start({
      ...storageEnv(proxy.endpoint, s3.bucket, prefix, cacheDir),
      LOAD_PART_MB: String(PART_MB),
      LOAD_CONCURRENCY: '2',
      LOAD_STALL_TIMEOUT_S: '1',
      LOAD_RETRIES: '8',
      ...extra,
    });
    running.push(svc);
    return { svc, cacheDir };
  }

  // A few greedy tokens prove the served weights are the real ones; more would only cost time.
  const GREEDY_TOKENS = 4;
  const greedy = () => ({ prompt_ids: golden.prompt_ids, max_new_tokens: GREEDY_TOKENS, temperature: 0 });
  const goldenIds = () => golden.new_tokens.slice(0, GREEDY_TOKENS);

  async function fetchedBytes(svc: ServiceProcess): Promise<number> {
    return (await svc.metrics()).get('gpu_load_bytes_fetched_total') ?? 0;
  }

  async function waitForFetched(svc: ServiceProcess, bytes: number): Promise<void> {
    const deadline = Date.now() + 30_000;
    while ((await fetchedBytes(svc)) < bytes) {
      if (Date.now() > deadline) throw new Error(`the download never reached ${bytes} bytes`);
      await sleep(50);
    }
  }

  it('the object server stopping mid-download: the load retries and resumes when it is back', async () => {
    proxy.bytesPerSecond = 8_000_000;
    const { svc } = await start('tiny/v1');
    const result = svc.generate(greedy());
    await waitForFetched(svc, 8_000_000);
    await s3.stop();
    await sleep(1500);
    await s3.start();

    const r = await result;
    expect(streamedIds(r.frames)).toEqual(goldenIds());
    expect(svc.events('load.retry').length).toBeGreaterThan(0);
    // Finished parts were kept: at most the parts in flight were fetched twice.
    const m = await svc.metrics();
    const total = m.get('gpu_model_bytes')!;
    expect(m.get('gpu_load_bytes_fetched_total')).toBeLessThanOrEqual(total + 2 * PART_MB * 2 ** 20);
    expect(m.get('gpu_model_loads_total{result="ok"}')).toBe(1);
  });

  it('a process killed mid-download: the next one resumes from the parts already on disk', async () => {
    proxy.bytesPerSecond = 8_000_000;
    const first = await start('tiny/v1');
    const pending = first.svc.generate(greedy()).catch(() => null);
    await waitForFetched(first.svc, 10_000_000);
    await first.svc.stop(); // SIGKILL: no chance to clean up
    await pending;

    proxy.bytesPerSecond = null;
    const { svc } = await start('tiny/v1', {}, first.cacheDir);
    const r = await svc.generate(greedy());
    expect(streamedIds(r.frames)).toEqual(goldenIds());
    const resumed = svc.events('load.resume');
    expect(resumed.length).toBeGreaterThan(0);
    const kept = resumed.reduce((n, l) => n + (l.bytes_kept as number), 0);
    expect(kept).toBeGreaterThanOrEqual(5_000_000);
    const m = await svc.metrics();
    expect(m.get('gpu_load_bytes_fetched_total')! + kept).toBe(m.get('gpu_model_bytes'));
  });

  it('a stalled connection is dropped after the stall timeout and the range is fetched again', async () => {
    proxy.stallCount = 1;
    proxy.stallAfterBytes = 300_000;
    const { svc } = await start('tiny/v1');
    const r = await svc.generate(greedy());
    expect(streamedIds(r.frames)).toEqual(goldenIds());
    expect(proxy.stalled).toBe(1);
    const retries = svc.events('load.retry');
    expect(retries.length).toBeGreaterThan(0);
    expect(String(retries[0]!.error)).toContain('no bytes for 1000 ms');
  });

  it('a corrupted object is detected, fetched once more, then reported and never served', async () => {
    await uploadTo(s3, modelDir, 'corrupt/v1');
    const weights = await readFile(join(modelDir, 'model.safetensors'));
    weights[weights.length - 100]! ^= 0xff; // same size, one flipped byte
    const client = s3Client(s3);
    await client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: 'corrupt/v1/model.safetensors', Body: weights }),
    );
    client.destroy();

    const { svc, cacheDir } = await start('corrupt/v1', { LOAD_PART_MB: '8' });
    const r = await svc.generate(greedy());
    expect(r.status).toBe(200);
    expect(streamedIds(r.frames)).toEqual([]);
    const done = doneFrame(r.frames);
    expect(done.finish_reason).toBe('error');
    expect(done.error?.code).toBe('weights_corrupt');
    expect(done.error?.message).toContain('model.safetensors');
    expect(done.error?.message).toContain('SHA-256');

    expect(svc.events('load.checksum_mismatch')).toHaveLength(1);
    const m = await svc.metrics();
    expect(m.get('gpu_model_loads_total{result="error"}')).toBe(1);
    const ready = await svc.signedGet('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'failed', error: expect.stringContaining('SHA-256') });
    // Nothing unverified is left where the engine would read it.
    const [cached] = readdirSync(cacheDir);
    expect(existsSync(join(cacheDir, cached!, 'model.safetensors'))).toBe(false);
    expect(existsSync(join(cacheDir, cached!, 'manifest.json'))).toBe(false);
  });

  it('wrong credentials give a clear error without revealing them', async () => {
    const { svc } = await start('tiny/v1', {
      AWS_ACCESS_KEY_ID: 'WRONGKEYID123',
      AWS_SECRET_ACCESS_KEY: 'wrong-secret-value-456',
    });
    const r = await svc.generate(greedy());
    const done = doneFrame(r.frames);
    expect(done.finish_reason).toBe('error');
    expect(done.error?.code).toBe('weights_unavailable');
    expect(done.error?.message).toMatch(/refused the credentials/);
    expect(done.error?.message).toContain('AWS_ACCESS_KEY_ID');
    expect(svc.events('model.load_failed')).toHaveLength(1);
    // A permanent refusal is not retried.
    expect(svc.events('load.retry')).toHaveLength(0);
    expect(svc.output).not.toContain('WRONGKEYID123');
    expect(svc.output).not.toContain('wrong-secret-value-456');
    expect(JSON.stringify(r.frames)).not.toContain('WRONGKEYID123');
  });
});
