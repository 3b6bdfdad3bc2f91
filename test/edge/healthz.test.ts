import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';

describe('edge worker', () => {
  it('answers GET /healthz inside workerd', async () => {
    const res = await exports.default.fetch(new Request('http://edge.test/healthz'));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('answers unknown routes with an OpenAI-shaped 404', async () => {
    const res = await exports.default.fetch(new Request('http://edge.test/nope'));
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: { type: string } };
    expect(body.error.type).toBe('invalid_request_error');
  });
});
