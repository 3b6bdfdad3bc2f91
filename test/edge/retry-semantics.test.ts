// What a client should do after a refusal, told the way OpenAI's clients read it: rate limits
// (type `requests` or `tokens`) are worth retrying after Retry-After; a spent quota or a request
// larger than the key's tokens per minute carry `x-should-retry: false`; a full GPU queue is a
// 503 at once, not a wait for a start that is not happening (a 503 without its code still is a
// start: upstream.test.ts).
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import {
  call,
  complete,
  createKey,
  MODEL_ID,
  ORIGIN,
  scenario,
  settledUsageOf,
  TOKENIZER_READY,
} from './helpers.ts';

const IDS = [300, 301, 302, 303];

interface ErrorBody {
  error: { type: string; code: string; message: string };
}

describe.skipIf(!TOKENIZER_READY)('429s', () => {
  it('a rate limit is type requests or tokens, code rate_limit_exceeded, and may be retried', async () => {
    const rpm = await createKey({ requests_per_minute: 1 });
    expect((await complete(rpm.key, { prompt: IDS, max_tokens: 1 })).status).toBe(200);
    const requests = await complete(rpm.key, { prompt: IDS, max_tokens: 1 });
    expect(requests.status).toBe(429);
    expect(((await requests.json()) as ErrorBody).error).toMatchObject({
      type: 'requests',
      code: 'rate_limit_exceeded',
    });
    expect(requests.headers.get('x-should-retry')).toBeNull();
    expect(Number(requests.headers.get('retry-after'))).toBeGreaterThan(0);

    const tpm = await createKey({ requests_per_minute: 100, tokens_per_minute: 12 });
    expect((await complete(tpm.key, { prompt: IDS, max_tokens: 6 })).status).toBe(200);
    const tokens = await complete(tpm.key, { prompt: IDS, max_tokens: 6 });
    expect(tokens.status).toBe(429);
    expect(((await tokens.json()) as ErrorBody).error).toMatchObject({
      type: 'tokens',
      code: 'rate_limit_exceeded',
    });
    expect(tokens.headers.get('x-should-retry')).toBeNull();
  });

  it('a spent quota is insufficient_quota with x-should-retry: false and Retry-After', async () => {
    const own = await createKey({ requests_per_minute: 100, tokens_per_day: 8 });
    expect((await complete(own.key, { prompt: IDS, max_tokens: 4 })).status).toBe(200);
    await settledUsageOf(own.id);
    const refused = await complete(own.key, { prompt: IDS, max_tokens: 4 });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('x-should-retry')).toBe('false');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await refused.json()) as ErrorBody).error).toMatchObject({
      type: 'insufficient_quota',
      code: 'insufficient_quota',
    });
  });

  it('a request larger than the tokens per minute says so, with x-should-retry: false', async () => {
    const own = await createKey({ tokens_per_minute: 10 });
    const refused = await complete(own.key, { prompt: IDS, max_tokens: 20 });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('x-should-retry')).toBe('false');
    const { error } = (await refused.json()) as ErrorBody;
    expect(error).toMatchObject({ type: 'tokens', code: 'rate_limit_exceeded' });
    expect(error.message).toMatch(/^Request too large for .* Limit 10, Requested 24/);
  });

  it('the openai client does not retry a refusal marked x-should-retry: false', async () => {
    const own = await createKey({ tokens_per_minute: 10 });
    let sent = 0;
    const client = new OpenAI({
      apiKey: own.key,
      baseURL: `${ORIGIN}/v1`,
      maxRetries: 2,
      fetch: (input, init) => {
        sent++;
        return call(new Request(input, init));
      },
    });
    const refused = client.completions.create({ model: MODEL_ID, prompt: IDS, max_tokens: 20 });
    await expect(refused).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    expect(sent).toBe(1);
  });
});

describe.skipIf(!TOKENIZER_READY)('a full GPU queue', () => {
  const FULL = scenario('status=503,code=overloaded,retry=7');

  it('is answered at once as 503 server_is_overloaded with the function Retry-After, and costs nothing', async () => {
    const own = await createKey();
    const started = Date.now();
    const res = await complete(own.key, { prompt: IDS, max_tokens: 3 }, { backend: FULL });
    expect(res.status).toBe(503);
    // COLD_START_TIMEOUT_S is 3 here: a start would have been waited for that long.
    expect(Date.now() - started).toBeLessThan(2000);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(((await res.json()) as ErrorBody).error).toMatchObject({
      type: 'service_unavailable',
      code: 'server_is_overloaded',
    });
    expect((await settledUsageOf(own.id)).tokens_today).toBe(0);
  });

  it('is a 503 for a streaming request too (nothing was sent yet)', async () => {
    const own = await createKey();
    const res = await complete(own.key, { prompt: IDS, max_tokens: 3, stream: true }, { backend: FULL });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('7');
    await res.arrayBuffer();
  });
});
