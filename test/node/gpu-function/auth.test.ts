// The GPU function's door, over real HTTP on the real process (no model needed): the signature
// is checked from the headers before any of the body is read, a body that trickles in is cut
// off, and readiness and metrics are for signed callers only.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest } from '../../../shared/src/signing.ts';
import { ServiceProcess, TEST_SECRET } from './helpers/service.ts';

let svc: ServiceProcess;
beforeAll(async () => {
  svc = await ServiceProcess.start({});
});
afterAll(() => svc?.stop());

/** A raw HTTP/1.1 exchange: sends the head (and `bodyPart`), then collects whatever comes back. */
function rawRequest(head: string, bodyPart: string): { socket: Socket; answer: Promise<string> } {
  const socket = connect(svc.port, '127.0.0.1');
  socket.write(`${head}\r\n\r\n${bodyPart}`);
  const answer = new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString();
    });
    socket.on('close', () => resolve(text));
    socket.on('error', () => resolve(text));
  });
  return { socket, answer };
}

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);

describe('GPU function authentication', () => {
  it('refuses an unsigned request before reading its body, and closes the connection', async () => {
    // Declares 60 kB and sends none of it: a refusal must not wait for the body.
    const t0 = performance.now();
    const { socket, answer } = rawRequest(
      `POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1:${svc.port}\r\ncontent-type: application/json\r\ncontent-length: 60000`,
      '',
    );
    const text = await answer;
    socket.destroy();
    expect(statusOf(text)).toBe(401);
    expect(text).toContain('signature_missing');
    expect(text.toLowerCase()).toContain('connection: close');
    expect(performance.now() - t0).toBeLessThan(3000);
  });

  it('cuts off a signed body that does not arrive in time (408)', async () => {
    const body = JSON.stringify({ prompt_ids: [5, 6, 7], max_new_tokens: 1 });
    const bytes = new TextEncoder().encode(body);
    const headers = await signRequest(TEST_SECRET, 'POST', svc.url('/v1/generate'), bytes);
    const head = [
      'POST /v1/generate HTTP/1.1',
      `Host: 127.0.0.1:${svc.port}`,
      'content-type: application/json',
      `content-length: ${bytes.length}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ].join('\r\n');
    const t0 = performance.now();
    const { socket, answer } = rawRequest(head, body.slice(0, 10));
    const text = await answer;
    socket.destroy();
    const waited = performance.now() - t0;
    expect(statusOf(text)).toBe(408);
    expect(text).toContain('body_timeout');
    expect(waited).toBeGreaterThan(4000);
    expect(waited).toBeLessThan(15_000);
  }, 30_000);

  it('refuses a request signed for another host (the audience)', async () => {
    const bytes = new TextEncoder().encode(JSON.stringify({ prompt_ids: [5], max_new_tokens: 1 }));
    const elsewhere = await signRequest(TEST_SECRET, 'POST', 'https://other-gpu.example/v1/generate', bytes);
    const res = await svc.generate({ prompt_ids: [5], max_new_tokens: 1 }, { headers: elsewhere });
    expect(res.status).toBe(401);
    expect(res.error?.error.code).toBe('signature_bad_signature');
  });

  it('serves /readyz and /metrics only to signed callers; /healthz stays open for the probes', async () => {
    for (const path of ['/readyz', '/metrics']) {
      const res = await fetch(svc.url(path));
      expect(res.status, path).toBe(401);
      const text = await res.text();
      expect(text).not.toContain('gpu_');
      expect(text).not.toContain('not_loaded');
    }
    const ready = await svc.signedGet('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'not_loaded' });
    const metrics = await svc.signedGet('/metrics');
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('gpu_generate_requests_total');
    expect((await fetch(svc.url('/healthz'))).status).toBe(200);
  });
});
