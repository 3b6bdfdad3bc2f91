// The GPU function misbehaving or starting: cold starts, refusals, failures mid-stream, stalls,
// and a client that goes away. COLD_START_TIMEOUT_S is 3 and STREAM_IDLE_TIMEOUT_S 2 here.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BACKEND_URL,
  backendLog,
  type CreatedKey,
  complete,
  createKey,
  readSse,
  scenario,
  settledUsageOf,
  TOKENIZER_READY,
  tokenize,
} from './helpers.ts';

const PROMPT = '天気が良いので散歩に出かけた。';
/** Nothing listens on port 1 (and nobody unprivileged can): connections are refused. */
const REFUSING = 'http://127.0.0.1:1';

let key: CreatedKey;
let promptTokens: number;
beforeAll(async () => {
  if (!TOKENIZER_READY) return;
  key = await createKey({ requests_per_minute: 1000 });
  promptTokens = (await tokenize(key.key, PROMPT)).length;
});

async function startsLater(delayMs: number): Promise<string> {
  const res = await fetch(`${BACKEND_URL}/control/listen-later/${delayMs}`, { method: 'POST' });
  return ((await res.json()) as { url: string }).url;
}

const dataEvents = (events: Awaited<ReturnType<typeof readSse>>) =>
  events.flatMap((e) => ('data' in e ? [e.data as Record<string, unknown>] : []));

describe.skipIf(!TOKENIZER_READY)('cold start', () => {
  it('waits while connections are refused, then answers', async () => {
    const backend = await startsLater(800);
    const res = await complete(key.key, { prompt: PROMPT, max_tokens: 3 }, { backend });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(3);
  });

  it('keeps a streaming client alive with SSE comments while the function starts (503 + Retry-After)', async () => {
    const tag = `cold-${Date.now()}`;
    const res = await complete(
      key.key,
      { prompt: PROMPT, max_tokens: 3, stream: true },
      { backend: scenario(`cold=${tag}:1200,tag=${tag}`) },
    );
    expect(res.status).toBe(200);
    const events = await readSse(res);
    const firstData = events.findIndex((e) => 'data' in e);
    expect(
      events.slice(0, firstData).filter((e) => 'comment' in e && e.comment === 'keep-alive').length,
    ).toBeGreaterThan(0);
    expect(events.at(-1)).toEqual({ done: true });
    const log = await backendLog(tag);
    expect(log.filter((e) => e.status === 503).length).toBeGreaterThan(0);
    expect(log.at(-1)).toMatchObject({ status: 200, outcome: 'done' });
  });

  it('passes heartbeats on as keep-alive comments', async () => {
    const res = await complete(
      key.key,
      { prompt: PROMPT, max_tokens: 2, stream: true },
      { backend: scenario('heartbeats=3') },
    );
    const events = await readSse(res);
    expect(events.slice(0, 3)).toEqual([
      { comment: 'keep-alive' },
      { comment: 'keep-alive' },
      { comment: 'keep-alive' },
    ]);
  });

  it('answers 503 with Retry-After past the bound, and charges nothing', async () => {
    const own = await createKey();
    const started = Date.now();
    const res = await complete(own.key, { prompt: PROMPT, max_tokens: 3 }, { backend: REFUSING });
    expect(res.status).toBe(503);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(res.headers.get('x-ratelimit-remaining-requests')).toBe('59');
    expect(await res.json()).toMatchObject({
      error: { type: 'service_unavailable', code: 'service_unavailable' },
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2900);
    expect((await settledUsageOf(own.id)).tokens_today).toBe(0);
  });

  it('ends a kept-alive stream with an error event past the bound', async () => {
    const res = await complete(
      key.key,
      { prompt: PROMPT, max_tokens: 3, stream: true },
      { backend: scenario(`cold=never-${Date.now()}:600000`) },
    );
    expect(res.status).toBe(200);
    const events = await readSse(res);
    expect(events.some((e) => 'comment' in e)).toBe(true);
    expect(events.at(-1)).toMatchObject({ data: { error: { code: 'service_unavailable' } } });
    expect(events.some((e) => 'done' in e)).toBe(false);
  });
});

describe.skipIf(!TOKENIZER_READY)('backend failures', () => {
  it('maps a refusing backend to 502 without details, and charges nothing', async () => {
    const own = await createKey();
    for (const status of [500, 401, 400]) {
      const res = await complete(
        own.key,
        { prompt: PROMPT, max_tokens: 3 },
        { backend: scenario(`status=${status}`) },
      );
      expect(res.status).toBe(502);
      const body = (await res.json()) as { error: { message: string; code: string } };
      expect(body.error.code).toBe('upstream_error');
      expect(body.error.message).not.toMatch(/scripted/);
    }
    expect((await settledUsageOf(own.id)).tokens_today).toBe(0);
  });

  it('ends a stream that fails midway with an error event, and settles what was produced', async () => {
    const own = await createKey();
    const res = await complete(
      own.key,
      { prompt: PROMPT, max_tokens: 20, stream: true },
      { backend: scenario('fail=3,chunk=1') },
    );
    expect(res.status).toBe(200);
    const events = dataEvents(await readSse(res));
    expect(events.length).toBeGreaterThan(1);
    expect(events.at(-1)).toMatchObject({ error: { type: 'server_error', code: 'upstream_error' } });
    const usage = await settledUsageOf(own.id);
    expect(usage.tokens_today).toBe(promptTokens + 3);
  });

  it('fails a non-streaming request whose generation breaks, charging what was produced', async () => {
    // The GPU did the work for the tokens before the failure: they are charged, as in a stream.
    for (const broken of ['fail=3', 'drop=3']) {
      const own = await createKey();
      const res = await complete(own.key, { prompt: PROMPT, max_tokens: 20 }, { backend: scenario(broken) });
      expect(res.status, broken).toBe(502);
      expect((await settledUsageOf(own.id)).tokens_today, broken).toBe(promptTokens + 3);
    }
  });

  it('reports a connection cut in the middle of the stream', async () => {
    const res = await complete(
      key.key,
      { prompt: PROMPT, max_tokens: 20, stream: true },
      { backend: scenario('drop=2,delay=5') },
    );
    const events = dataEvents(await readSse(res));
    expect(events.at(-1)).toMatchObject({ error: { code: 'upstream_error' } });
  });

  it('treats a malformed frame as a backend failure, not a crash', async () => {
    const stream = await complete(
      key.key,
      { prompt: PROMPT, max_tokens: 20, stream: true },
      { backend: scenario('junk=2') },
    );
    expect(dataEvents(await readSse(stream)).at(-1)).toMatchObject({
      error: { type: 'server_error', code: 'upstream_error' },
    });
    const whole = await complete(
      key.key,
      { prompt: PROMPT, max_tokens: 20 },
      { backend: scenario('junk=0') },
    );
    expect(whole.status).toBe(502);
  });

  it('gives up on a backend that goes silent', async () => {
    const res = await complete(
      key.key,
      { prompt: PROMPT, max_tokens: 20, stream: true },
      { backend: scenario('stall=2') },
    );
    const events = dataEvents(await readSse(res));
    expect(events.at(-1)).toMatchObject({ error: { code: 'upstream_timeout' } });
  });
});

describe.skipIf(!TOKENIZER_READY)('a client that goes away', () => {
  it('cancels the generation upstream and settles the usage so far', async () => {
    const own = await createKey();
    const tag = `gone-${Date.now()}`;
    const res = await complete(
      own.key,
      { prompt: PROMPT, max_tokens: 500, stream: true },
      { backend: scenario(`delay=20,tag=${tag}`) },
    );
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toMatch(/^data: /);
    await reader.cancel();

    await expect
      .poll(async () => (await backendLog(tag))[0]?.outcome, { timeout: 5000 })
      .toBe('client_closed');
    expect((await backendLog(tag))[0]!.tokensSent).toBeLessThan(100);
    const usage = await settledUsageOf(own.id);
    expect(usage.tokens_today).toBeGreaterThan(promptTokens);
    expect(usage.tokens_today).toBeLessThan(promptTokens + 100);
  });
});
