// No free work before the limits: every route asks the key's limiter object before it parses or
// tokenizes anything, and what tokenize and detokenize will do is bounded before they do it.

import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { CONTEXT_LENGTH } from '../../shared/src/model-facts.ts';
import { admin, api, complete, createKey, staleKv, TOKENIZER_READY, usageOf } from './helpers.ts';

describe.skipIf(!TOKENIZER_READY)('limits before work', () => {
  it('refuses a key over its request limit before reading its body (429, not 400)', async () => {
    const own = await createKey({ requests_per_minute: 1 });
    expect((await complete(own.key, { prompt: [300], max_tokens: 1 })).status).toBe(200);
    // A body that would be a 400 (and one that would be a lot of tokenizing): the refusal wins.
    const malformed = await api(own.key, '/v1/completions', '{"model": ');
    expect(malformed.status).toBe(429);
    const long = await complete(own.key, { prompt: '長い文章。'.repeat(10_000), max_tokens: 1 });
    expect(long.status).toBe(429);
    expect(await long.json()).toMatchObject({ error: { code: 'rate_limit_exceeded' } });
  });

  it('settles a request refused as bad input before answering it: back-to-back bad requests never pile up in flight', async () => {
    const own = await createKey({ requests_per_minute: 1000 });
    for (let i = 0; i < 30; i++) {
      const res = await complete(own.key, { prompt: [300], max_tokens: 0 });
      expect(res.status, `request ${i}`).toBe(400);
      await res.arrayBuffer();
    }
    expect((await usageOf(own.id)).open_reservations).toBe(0);
    expect((await complete(own.key, { prompt: [300], max_tokens: 1 })).status).toBe(200);
  });

  it('refuses a key whose tokens are spent before reading its body', async () => {
    const own = await createKey({ requests_per_minute: 100, tokens_per_day: 5 });
    expect((await complete(own.key, { prompt: [300, 301], max_tokens: 3 })).status).toBe(200);
    const refused = await api(own.key, '/v1/completions', 'not even JSON');
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: { code: 'insufficient_quota' } });
  });

  it('refuses a revoked key on tokenize, detokenize and models at once, whatever KV still says', async () => {
    const own = await createKey();
    // A data centre whose KV cache still holds the key as enabled.
    const stale = { env: { API_KEYS: staleKv(env.API_KEYS) } };
    expect((await api(own.key, '/v1/models', undefined, stale)).status).toBe(200);
    expect((await admin('DELETE', `/keys/${own.id}`)).status).toBe(200);
    for (const [path, body] of [
      ['/v1/models', undefined],
      ['/v1/tokenize', { prompt: 'a' }],
      ['/v1/detokenize', { tokens: [300] }],
    ] as const) {
      const res = await api(own.key, path, body, stale);
      expect(res.status, path).toBe(401);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/revoked/);
    }
  });
});

describe.skipIf(!TOKENIZER_READY)('bounded tokenize and detokenize', () => {
  it('decodes at most a context of ids (no 64x amplification)', async () => {
    const own = await createKey({ requests_per_minute: 100 });
    const ok = await api(own.key, '/v1/detokenize', { tokens: new Array(CONTEXT_LENGTH).fill(300) });
    expect(ok.status).toBe(200);
    const res = await api(own.key, '/v1/detokenize', { tokens: new Array(CONTEXT_LENGTH + 1).fill(300) });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { param: 'tokens' } });
  });

  it('does not encode a prompt that cannot fit in the context', async () => {
    const own = await createKey({ requests_per_minute: 100 });
    // A larger body limit than the tests' 64 KiB, as a deployment may set.
    const roomy = { env: { MAX_BODY_BYTES: String(1 << 20) } };
    const text = 'a'.repeat(192 * CONTEXT_LENGTH + 1);
    const res = await api(own.key, '/v1/tokenize', { prompt: text }, roomy);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: { param: 'prompt', code: 'context_length_exceeded' },
    });
    expect(
      (await api(own.key, '/v1/tokenize', { prompt: 'a'.repeat(192 * CONTEXT_LENGTH) }, roomy)).status,
    ).toBe(200);
  });

  it('refuses a completion prompt longer than 192 characters per token left, without encoding it', async () => {
    const own = await createKey({ requests_per_minute: 100 });
    const res = await complete(own.key, {
      prompt: 'a'.repeat(192 * 48 + 1),
      max_tokens: CONTEXT_LENGTH - 48,
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { param: string; code: string; message: string } };
    expect(body.error).toMatchObject({ param: 'prompt', code: 'context_length_exceeded' });
    expect(body.error.message).toMatch(/9217 characters need more than the 48 tokens left/);
    expect((await usageOf(own.id)).tokens_today).toBe(0);
  });
});
