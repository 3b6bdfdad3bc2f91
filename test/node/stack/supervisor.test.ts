// The scale-to-zero supervisor in front of the real GPU function process: what the edge sees
// while the function starts, and when it cannot start at all.
import { afterEach, describe, expect, it } from 'vitest';
import { memoryLog } from '../../../scripts/lib/stack/log.ts';
import { GpuSupervisor } from '../../../scripts/lib/stack/supervisor.ts';
import { signRequest } from '../../../shared/src/signing.ts';

let supervisor: GpuSupervisor | undefined;
afterEach(async () => {
  await supervisor?.close();
  supervisor = undefined;
});

const generate = (url: string) =>
  fetch(`${url}/v1/generate`, {
    method: 'POST',
    body: '{}',
    headers: { 'content-type': 'application/json' },
  });

describe('the GPU function supervisor', () => {
  it('starts the function on a generation request, answering 503 + Retry-After meanwhile', async () => {
    const log = memoryLog();
    // No model: the function starts and listens, and refuses generation itself (503, not ours).
    const secret = 'supervisor-test-secret-of-32-bytes';
    supervisor = new GpuSupervisor({ port: 0, env: { GPU_HMAC_SECRET: secret, MODEL_URI: '' }, log });
    await supervisor.listen();
    const health = await fetch(`${supervisor.url}/healthz`);
    expect(await health.json()).toEqual({ status: 'ok', gpu_function: 'stopped' });
    // Only generation wakes it.
    expect((await fetch(`${supervisor.url}/readyz`)).status).toBe(503);
    expect(supervisor.starts).toBe(0);

    const first = await generate(supervisor.url);
    expect(first.status).toBe(503);
    expect(first.headers.get('retry-after')).toBe('1');
    expect(((await first.json()) as { error: { code: string } }).error.code).toBe('service_unavailable');
    await supervisor.waitFor('running', 30_000);
    expect(supervisor.starts).toBe(1);
    // Now proxied: the function's own /readyz answers through the supervisor, which passes the
    // Host on, so a request signed for the supervisor's address is valid behind it.
    const url = `${supervisor.url}/readyz`;
    const ready = await fetch(url, { headers: await signRequest(secret, 'GET', url, new Uint8Array(0)) });
    expect(await ready.json()).toMatchObject({ status: 'not_loaded' });
    expect(log.text()).toMatch(/\[gpu\] listening url=/);

    supervisor.signal('SIGKILL');
    await supervisor.waitFor('stopped', 10_000);
    expect(log.text()).toMatch(/stopped \(signal SIGKILL\); the next request starts it again/);
  });

  it('fails fast with 502 when the function cannot start, instead of restarting it in a loop', async () => {
    const log = memoryLog();
    supervisor = new GpuSupervisor({ port: 0, env: { IDLE_TIMEOUT_S: 'soon' }, log });
    await supervisor.listen();
    expect((await generate(supervisor.url)).status).toBe(503);
    await new Promise<void>((resolve) => supervisor!.once('exit', () => resolve()));
    const refused = await generate(supervisor.url);
    expect(refused.status).toBe(502);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(
      /failed to start: exit code 2/,
    );
    expect(supervisor.starts).toBe(1);
    expect(log.text()).toMatch(/settings\.invalid/);
  });
});
