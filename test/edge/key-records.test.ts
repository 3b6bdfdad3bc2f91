// Key administration with the key's limiter object as the source of truth: no change is lost to
// KV's caching or to a concurrent change, a failed KV write leaves nothing half made, and
// creating a key is idempotent.
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { admin, api, complete, createKey, observedKv, staleKv, TOKENIZER_READY } from './helpers.ts';

interface KeyView {
  id: string;
  name: string;
  disabled: boolean;
  version: number;
  limits: Record<string, number>;
  key?: string;
}

const chosenKey = () => `sk-jslm-${crypto.randomUUID().replace(/-/g, '')}`;

describe('key records', () => {
  it('a revoke followed at once by a rename keeps the key revoked, whatever KV still says', async () => {
    const own = await createKey();
    // Every call sees KV as a data centre with a warm cache does (the enabled record).
    const stale = { env: { API_KEYS: staleKv(env.API_KEYS) } };
    expect((await api(own.key, '/v1/models', undefined, stale)).status).toBe(200);
    expect((await admin('GET', `/keys/${own.id}`, undefined, undefined, stale)).status).toBe(200);
    expect((await admin('DELETE', `/keys/${own.id}`, undefined, undefined, stale)).status).toBe(200);
    const renamed = await admin('PATCH', `/keys/${own.id}`, { name: 'renamed' }, undefined, stale);
    expect(await renamed.json()).toMatchObject({ name: 'renamed', disabled: true });
    expect((await api(own.key, '/v1/models', undefined, stale)).status).toBe(401);
    if (TOKENIZER_READY) {
      expect((await complete(own.key, { prompt: [300], max_tokens: 1 }, stale)).status).toBe(401);
    }
  });

  it('concurrent changes never overwrite each other', async () => {
    for (let round = 0; round < 3; round++) {
      const own = await createKey();
      const changes = await Promise.all([
        admin('PATCH', `/keys/${own.id}`, { name: `name-${round}` }),
        admin('PATCH', `/keys/${own.id}`, { limits: { requests_per_minute: 7 } }),
        admin('PATCH', `/keys/${own.id}`, { limits: { tokens_per_day: 1234 } }),
      ]);
      for (const r of changes) expect(r.status).toBe(200);
      const shown = (await (await admin('GET', `/keys/${own.id}`)).json()) as KeyView;
      expect(shown).toMatchObject({
        name: `name-${round}`,
        limits: { requests_per_minute: 7, tokens_per_day: 1234 },
        version: 4,
      });
      // KV's copy (what listings show) ends at the newest version too.
      const listed = (await (await admin('GET', '/keys')).json()) as { data: KeyView[] };
      expect(listed.data.find((k) => k.id === own.id)).toMatchObject({ version: 4, name: `name-${round}` });
    }
  });

  it('applies a change only to the version it was made for (If-Match), 412 otherwise', async () => {
    const own = await createKey();
    const first = await admin('PATCH', `/keys/${own.id}`, { name: 'a' }, undefined, {
      headers: { 'if-match': '"1"' },
    });
    expect(first.status).toBe(200);
    expect(first.headers.get('etag')).toBe('"2"');
    const late = await admin('PATCH', `/keys/${own.id}`, { name: 'b' }, undefined, {
      headers: { 'if-match': '"1"' },
    });
    expect(late.status).toBe(412);
    expect(await late.json()).toMatchObject({ error: { code: 'version_mismatch' } });
    expect(((await (await admin('GET', `/keys/${own.id}`)).json()) as KeyView).name).toBe('a');
  });

  it('creating the same key twice makes one key (201, then 200); a different creation is a conflict', async () => {
    const key = chosenKey();
    const first = await admin('POST', '/keys', { name: 'local', key });
    expect(first.status).toBe(201);
    const again = await admin('POST', '/keys', { name: 'local', key });
    expect(again.status).toBe(200);
    const [a, b] = [(await first.json()) as KeyView, (await again.json()) as KeyView];
    expect(b.id).toBe(a.id);
    expect(b.version).toBe(1);
    const other = await admin('POST', '/keys', { name: 'someone else', key });
    expect(other.status).toBe(409);
    // A revoked key is not brought back by creating it again.
    expect((await admin('DELETE', `/keys/${a.id}`)).status).toBe(200);
    expect((await admin('POST', '/keys', { name: 'local', key })).status).toBe(409);
  });

  it('a failed KV write leaves a key that is found by id, and repeating the request completes it', async () => {
    const key = chosenKey();
    let failing = true;
    const flaky = observedKv(env.API_KEYS, () => failing);
    const failed = await admin('POST', '/keys', { name: 'flaky', key }, undefined, {
      env: { API_KEYS: flaky.kv },
    });
    expect(failed.status).toBe(503);
    expect(await failed.json()).toMatchObject({ error: { code: 'key_copy_pending' } });
    expect(failed.headers.get('retry-after')).toBeTruthy();
    // Not usable yet (no copy to find it by), but not lost either: the admin API finds it by id.
    expect((await api(key, '/v1/models')).status).toBe(401);
    const list = (await (await admin('GET', '/keys')).json()) as { data: KeyView[] };
    expect(list.data.find((k) => k.name === 'flaky')).toBeUndefined();
    failing = false;
    const retried = await admin('POST', '/keys', { name: 'flaky', key });
    expect(retried.status).toBe(200);
    const { id } = (await retried.json()) as KeyView;
    expect((await admin('GET', `/keys/${id}`)).status).toBe(200);
    expect((await api(key, '/v1/models')).status).toBe(200);
  });
});
