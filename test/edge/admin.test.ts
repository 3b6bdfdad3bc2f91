import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, admin, api, call, createKey, ORIGIN } from './helpers.ts';

interface KeyView {
  id: string;
  name: string;
  hint: string;
  limits: Record<string, number>;
  created: number;
  disabled: boolean;
  key?: string;
  hash?: string;
}

describe('admin API authentication', () => {
  it('refuses a missing or wrong admin token', async () => {
    for (const token of ['', 'wrong', `${ADMIN_TOKEN}x`, ADMIN_TOKEN.slice(0, -1)]) {
      const res = await admin('GET', '/keys', undefined, token);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { type: string } }).error.type).toBe('authentication_error');
    }
  });

  it('does not accept an API key as the admin token', async () => {
    const { key } = await createKey();
    expect((await admin('GET', '/keys', undefined, key)).status).toBe(401);
  });
});

describe('API keys', () => {
  it('shows a new key once and stores only its SHA-256 hash', async () => {
    const res = await admin('POST', '/keys', { name: 'alice', limits: { requests_per_minute: 7 } });
    expect(res.status).toBe(201);
    const created = (await res.json()) as KeyView;
    expect(created.key).toMatch(/^sk-jslm-[A-Za-z0-9_-]{43}$/);
    expect(created.hint).toBe(`sk-jslm-...${created.key!.slice(-4)}`);
    expect(created.hash).toBeUndefined();
    expect(created.limits.requests_per_minute).toBe(7);
    expect(created.limits.tokens_per_minute).toBe(100_000); // default from settings

    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(created.key!));
    const hash = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
    const stored = await env.API_KEYS.get(`key:${hash}`);
    expect(stored).not.toBeNull();
    const all = await env.API_KEYS.list();
    for (const entry of all.keys) {
      expect(entry.name).not.toContain(created.key!);
      expect((await env.API_KEYS.get(entry.name)) ?? '').not.toContain(created.key!);
    }

    const shown = (await (await admin('GET', `/keys/${created.id}`)).json()) as KeyView;
    expect(shown.key).toBeUndefined();
    expect(shown.hash).toBeUndefined();
    expect(shown.name).toBe('alice');
    const list = (await (await admin('GET', '/keys')).json()) as { data: KeyView[] };
    const listed = list.data.find((k) => k.id === created.id);
    expect(listed).toMatchObject({ name: 'alice', disabled: false });
    expect(listed?.key).toBeUndefined();
  });

  it('changes limits, which apply to the very next request', async () => {
    const { id, key } = await createKey({ requests_per_minute: 50 });
    let res = await api(key, '/v1/models');
    expect(res.headers.get('x-ratelimit-limit-requests')).toBe('50');

    const patched = await admin('PATCH', `/keys/${id}`, {
      limits: { requests_per_minute: 5 },
      name: 'renamed',
    });
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({ name: 'renamed', limits: { requests_per_minute: 5 } });
    res = await api(key, '/v1/models');
    expect(res.headers.get('x-ratelimit-limit-requests')).toBe('5');
  });

  it('revokes a key: it is refused at once, and can be enabled again', async () => {
    const { id, key } = await createKey();
    expect((await api(key, '/v1/models')).status).toBe(200);
    const revoked = await admin('DELETE', `/keys/${id}`);
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({ id, disabled: true });
    const refused = await api(key, '/v1/models');
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/revoked/);

    await admin('PATCH', `/keys/${id}`, { disabled: false });
    expect((await api(key, '/v1/models')).status).toBe(200);
  });

  it('validates admin input', async () => {
    const cases: [string, string, unknown, string | null][] = [
      ['POST', '/keys', {}, 'name'],
      ['POST', '/keys', { name: '' }, 'name'],
      ['POST', '/keys', { name: 'x'.repeat(101) }, 'name'],
      ['POST', '/keys', { name: 5 }, 'name'],
      ['POST', '/keys', { name: 'a', limits: { requests_per_minute: 0 } }, 'limits.requests_per_minute'],
      ['POST', '/keys', { name: 'a', limits: { tokens_per_day: 1.5 } }, 'limits.tokens_per_day'],
      ['POST', '/keys', { name: 'a', limits: { tokens_per_hour: 5 } }, 'limits.tokens_per_hour'],
      ['POST', '/keys', { name: 'a', limits: [] }, 'limits'],
      ['POST', '/keys', { name: 'a', owner: 'b' }, 'owner'],
      ['POST', '/keys', [], null],
    ];
    for (const [method, path, body, param] of cases) {
      const res = await admin(method, path, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: { param: string | null } }).error.param).toBe(param);
    }
    expect((await admin('PATCH', '/keys/key_missing', { name: 'x' })).status).toBe(404);
    expect((await admin('DELETE', '/keys/key_missing')).status).toBe(404);
  });
});

describe('API key authentication', () => {
  it('answers 401 in OpenAI shape for a missing, malformed, or unknown key', async () => {
    const headers: Record<string, string>[] = [
      {},
      { authorization: 'Basic abc' },
      { authorization: 'Bearer' },
      { authorization: 'Bearer sk-jslm-not-a-real-key' },
      { authorization: `Bearer sk-jslm-${'x'.repeat(500)}` },
    ];
    for (const h of headers) {
      const res = await call(new Request(`${ORIGIN}/v1/models`, { headers: h }));
      expect(res.status).toBe(401);
      const body = (await res.json()) as { error: Record<string, unknown> };
      expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
      expect(body.error.type).toBe('authentication_error');
    }
  });
});
