// Many parallel requests of one key: the limiter object serializes them, so no limit is ever
// exceeded and the headers count down without gaps or repeats.
import { describe, expect, it } from 'vitest';
import { complete, createKey, settledUsageOf, TOKENIZER_READY } from './helpers.ts';

const PROMPT_IDS = [300, 301, 302, 303]; // four tokens: reservations are easy to count
const parallel = <T>(n: number, fn: () => Promise<T>) => Promise.all(Array.from({ length: n }, fn));

describe.skipIf(!TOKENIZER_READY)('parallel requests of one key', () => {
  it('never exceed requests per minute; remaining-requests counts down through every value', async () => {
    const { id, key } = await createKey({ requests_per_minute: 12, concurrent_requests: 100 });
    const responses = await parallel(40, () => complete(key, { prompt: PROMPT_IDS, max_tokens: 1 }));
    const ok = responses.filter((r) => r.status === 200);
    const limited = responses.filter((r) => r.status === 429);
    expect(ok.length).toBe(12);
    expect(limited.length).toBe(28);
    const remaining = ok
      .map((r) => Number(r.headers.get('x-ratelimit-remaining-requests')))
      .sort((a, b) => a - b);
    expect(remaining).toEqual(Array.from({ length: 12 }, (_, i) => i));
    for (const r of limited) {
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(r.headers.get('x-ratelimit-remaining-requests')).toBe('0');
      expect(await r.json()).toMatchObject({
        error: { type: 'requests', code: 'rate_limit_exceeded' },
      });
    }
    await Promise.all(ok.map((r) => r.arrayBuffer()));
    expect((await settledUsageOf(id)).tokens_today).toBe(12 * 5);
  });

  it('never exceed tokens per minute (reservations count before usage is known)', async () => {
    const { key } = await createKey({
      requests_per_minute: 1000,
      tokens_per_minute: 100,
      concurrent_requests: 100,
    });
    // Each request reserves 4 + 6 = 10 tokens.
    const responses = await parallel(30, () => complete(key, { prompt: PROMPT_IDS, max_tokens: 6 }));
    const ok = responses.filter((r) => r.status === 200);
    expect(ok.length).toBe(10);
    const remaining = ok
      .map((r) => Number(r.headers.get('x-ratelimit-remaining-tokens')))
      .sort((a, b) => a - b);
    expect(remaining).toEqual(Array.from({ length: 10 }, (_, i) => i * 10));
    await Promise.all(responses.map((r) => r.arrayBuffer()));
  });

  it('never exceed the daily quota, answering insufficient_quota beyond it', async () => {
    const { id, key } = await createKey({
      requests_per_minute: 1000,
      tokens_per_day: 50,
      concurrent_requests: 100,
    });
    const responses = await parallel(20, () => complete(key, { prompt: PROMPT_IDS, max_tokens: 6 }));
    const ok = responses.filter((r) => r.status === 200);
    expect(ok.length).toBe(5);
    for (const r of responses.filter((r) => r.status === 429)) {
      expect(await r.json()).toMatchObject({
        error: { type: 'insufficient_quota', code: 'insufficient_quota' },
      });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    await Promise.all(ok.map((r) => r.arrayBuffer()));
    expect((await settledUsageOf(id)).tokens_today).toBe(50);
  });

  it('count down one by one across sequential requests', async () => {
    const { key } = await createKey({
      requests_per_minute: 5,
      tokens_per_minute: 1000,
      concurrent_requests: 100,
    });
    const seen: [string | null, string | null][] = [];
    for (let i = 0; i < 3; i++) {
      const res = await complete(key, { prompt: PROMPT_IDS, max_tokens: 6 });
      await res.arrayBuffer();
      seen.push([
        res.headers.get('x-ratelimit-remaining-requests'),
        res.headers.get('x-ratelimit-remaining-tokens'),
      ]);
    }
    // Tokens: each reserves 10 and settles to 10 (the echo backend uses all of max_tokens).
    expect(seen).toEqual([
      ['4', '990'],
      ['3', '980'],
      ['2', '970'],
    ]);
  });
});
