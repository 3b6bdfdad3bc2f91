// `cli gpu readyz|metrics`: how an operator reads the GPU function's signed-only routes.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceProcess, TEST_SECRET } from '../gpu-function/helpers/service.ts';

let svc: ServiceProcess;
beforeAll(async () => {
  svc = await ServiceProcess.start({});
});
afterAll(() => svc?.stop());

function cli(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, ['scripts/cli.ts', 'gpu', ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('cli gpu', () => {
  it('signs its requests, so readiness and metrics answer', () => {
    const env = { GPU_HMAC_SECRET: TEST_SECRET, GPU_FUNCTION_URL: svc.base };
    const ready = cli(['readyz'], env);
    expect(ready.status).toBe(1); // no model: not ready
    expect(JSON.parse(ready.stdout)).toMatchObject({ status: 'not_loaded' });
    const metrics = cli(['metrics', '--url', svc.base], { GPU_HMAC_SECRET: TEST_SECRET });
    expect(metrics.status, metrics.stderr).toBe(0);
    expect(metrics.stdout).toContain('gpu_generate_requests_total');
  });

  it('is refused with another secret, and says why', () => {
    const r = cli(['readyz'], { GPU_HMAC_SECRET: 'x'.repeat(40), GPU_FUNCTION_URL: svc.base });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/refused \(HTTP 401\)/);
  });
});
