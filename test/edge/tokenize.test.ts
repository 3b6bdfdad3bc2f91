import { beforeAll, describe, expect, it } from 'vitest';
import { api, type CreatedKey, createKey, MODEL_ID, TOKENIZER_READY, usageOf } from './helpers.ts';

let key: CreatedKey;
beforeAll(async () => {
  if (!TOKENIZER_READY) return;
  key = await createKey({ requests_per_minute: 100 });
});

describe.skipIf(!TOKENIZER_READY)('models, tokenize and detokenize', () => {
  it('lists the served model', async () => {
    const res = await api(key.key, '/v1/models');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { object: string; data: { id: string; object: string }[] };
    expect(body.object).toBe('list');
    expect(body.data.map((m) => m.id)).toEqual([MODEL_ID]);
    expect((await api(key.key, `/v1/models/${MODEL_ID}`)).status).toBe(200);
    expect((await api(key.key, '/v1/models/other')).status).toBe(404);
  });

  it('round-trips text through token ids', async () => {
    const text = '日本語の文章をトークンに分けます。Hello, world! 🎉';
    const tok = await api(key.key, '/v1/tokenize', { model: MODEL_ID, prompt: text });
    expect(tok.status).toBe(200);
    const { tokens, count, max_model_len } = (await tok.json()) as {
      tokens: number[];
      count: number;
      max_model_len: number;
    };
    expect(count).toBe(tokens.length);
    expect(count).toBeGreaterThan(5);
    expect(max_model_len).toBe(2048);
    const detok = await api(key.key, '/v1/detokenize', { tokens });
    expect(await detok.json()).toEqual({ prompt: text });
  });

  it('validates its input', async () => {
    const cases: [string, unknown, string | null][] = [
      ['/v1/tokenize', {}, 'prompt'],
      ['/v1/tokenize', { prompt: 5 }, 'prompt'],
      ['/v1/tokenize', { prompt: '\ud800' }, 'prompt'],
      ['/v1/tokenize', { prompt: 'a', extra: 1 }, 'extra'],
      ['/v1/detokenize', { tokens: 'abc' }, 'tokens'],
      ['/v1/detokenize', { tokens: [1, -2] }, 'tokens'],
      ['/v1/detokenize', { tokens: [70000] }, 'tokens'],
      ['/v1/detokenize', [], null],
    ];
    for (const [path, body, param] of cases) {
      const res = await api(key.key, path, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: { param: string | null } }).error.param).toBe(param);
    }
    expect((await api(key.key, '/v1/tokenize', { model: 'other', prompt: 'a' })).status).toBe(404);
  });

  it('counts against the request limit (with its headers) but spends no tokens', async () => {
    const own = await createKey({ requests_per_minute: 3 });
    const paths: [string, unknown][] = [
      ['/v1/tokenize', { prompt: 'abc' }],
      ['/v1/detokenize', { tokens: [300] }],
      ['/v1/models', undefined],
    ];
    for (const [i, [path, body]] of paths.entries()) {
      const res = await api(own.key, path, body);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('x-ratelimit-limit-requests')).toBe('3');
      expect(res.headers.get('x-ratelimit-remaining-requests')).toBe(String(2 - i));
      expect(res.headers.get('x-ratelimit-remaining-tokens')).toBe('100000');
    }
    for (const [path, body] of paths) {
      const refused = await api(own.key, path, body);
      expect(refused.status, path).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    const usage = await usageOf(own.id);
    expect(usage.tokens_today).toBe(0);
    expect(usage.open_reservations).toBe(0); // counted and settled at once
  });
});
