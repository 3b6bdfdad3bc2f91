// The whole system through real HTTP: the edge under wrangler dev, the GPU function (demo model,
// random weights, real vocabulary) behind its supervisor, and the object storage it loads from.
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type ApiErrorBody,
  adminRequest,
  type Completion,
  completionRequest,
  createKey,
  eventually,
  HAVE_TOKENIZER,
  keyUsage,
  loadTokenizer,
  sseData,
  startTestStack,
  type TestStack,
} from './helpers.ts';

const LOCAL_KEY = `sk-jslm-e2e${randomBytes(24).toString('hex')}`;
const PROMPT = '今日はいい天気なので、';

let t: TestStack;

beforeAll(async () => {
  if (!HAVE_TOKENIZER) return;
  t = await startTestStack('api', { idleTimeoutS: 300, localApiKey: LOCAL_KEY });
}, 180_000);

afterAll(async () => {
  await t?.close();
});

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail' && t) console.error(`stack log:\n${t.logText()}`);
});

/** Reads a whole streamed completion: its text chunks, the usage chunk, and how it ended. */
async function streamCompletion(res: Response) {
  const chunks: string[] = [];
  let usage: Completion['usage'] | undefined;
  let finish: string | null = null;
  let done = false;
  for await (const data of sseData(res)) {
    if (data === '[DONE]') {
      done = true;
      continue;
    }
    const event = JSON.parse(data) as Partial<Completion> & { usage?: Completion['usage'] | null };
    if (event.usage) usage = event.usage;
    const choice = event.choices?.[0];
    if (choice?.text) chunks.push(choice.text);
    if (choice?.finish_reason) finish = choice.finish_reason;
  }
  return { chunks, text: chunks.join(''), usage, finish, done };
}

describe.skipIf(!HAVE_TOKENIZER)('completions through the local stack', () => {
  it('registers the fixed LOCAL_API_KEY and serves the demo model', async () => {
    expect(t.stack.apiKey).toMatchObject({ key: LOCAL_KEY, state: 'registered', source: 'LOCAL_API_KEY' });
    expect(t.stack.model).toMatchObject({ kind: 'demo', reused: false });
    expect(t.stack.model.label).toMatch(/gibberish/);
    const models = await fetch(`${t.stack.edgeUrl}/v1/models`, {
      headers: { authorization: `Bearer ${LOCAL_KEY}` },
    });
    expect(models.status).toBe(200);
    // Nothing ran yet: the GPU function starts with the first generation.
    expect(t.stack.supervisor.state).toBe('stopped');
  });

  it('streams a string prompt back as text, with usage counted by the tokenizer', async () => {
    const res = await completionRequest(t.stack.edgeUrl, LOCAL_KEY, {
      prompt: PROMPT,
      max_tokens: 12,
      seed: 42,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const streamed = await streamCompletion(res);
    expect(streamed.done).toBe(true);
    expect(streamed.text.length).toBeGreaterThan(0);

    const tokenizer = loadTokenizer();
    const promptTokens = tokenizer.encode(PROMPT).length;
    expect(streamed.usage?.prompt_tokens).toBe(promptTokens);
    // Random weights rarely pick the end-of-text token; either way the count is the model's.
    const completionTokens = streamed.usage?.completion_tokens ?? 0;
    expect(completionTokens).toBe(streamed.finish === 'length' ? 12 : completionTokens);
    expect(completionTokens).toBeGreaterThan(0);
    expect(completionTokens).toBeLessThanOrEqual(12);
    expect(streamed.usage?.total_tokens).toBe(promptTokens + completionTokens);

    const counted = await fetch(`${t.stack.edgeUrl}/v1/tokenize`, {
      method: 'POST',
      headers: { authorization: `Bearer ${LOCAL_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: PROMPT }),
    });
    expect(((await counted.json()) as { count: number }).count).toBe(promptTokens);

    // The same request without streaming gives the same text for the same seed.
    const whole = await completionRequest(t.stack.edgeUrl, LOCAL_KEY, {
      prompt: PROMPT,
      max_tokens: 12,
      seed: 42,
    });
    expect(whole.status).toBe(200);
    const body = (await whole.json()) as Completion;
    expect(body.choices[0]?.text).toBe(streamed.text);
    expect(body.usage).toEqual(streamed.usage);

    const other = await completionRequest(t.stack.edgeUrl, LOCAL_KEY, {
      prompt: PROMPT,
      max_tokens: 12,
      seed: 43,
    });
    expect(((await other.json()) as Completion).choices[0]?.text).not.toBe(streamed.text);
  });

  it('refuses a wrong key and a revoked key with 401', async () => {
    const wrong = await completionRequest(t.stack.edgeUrl, `sk-jslm-${'x'.repeat(43)}`, {
      prompt: PROMPT,
      max_tokens: 1,
    });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as ApiErrorBody).error.type).toBe('authentication_error');

    const { id, key } = await createKey(t.stack);
    const ok = await completionRequest(t.stack.edgeUrl, key, { prompt: PROMPT, max_tokens: 1 });
    expect(ok.status).toBe(200);
    await ok.body?.cancel();
    expect((await adminRequest(t.stack, 'DELETE', `/keys/${id}`)).status).toBe(200);
    const revoked = await completionRequest(t.stack.edgeUrl, key, { prompt: PROMPT, max_tokens: 1 });
    expect(revoked.status).toBe(401);
    expect(((await revoked.json()) as ApiErrorBody).error.type).toBe('authentication_error');

    // The same key cannot be registered twice, and a chosen key must be long enough.
    const again = await adminRequest(t.stack, 'POST', '/keys', { name: 'dup', key: LOCAL_KEY });
    expect(again.status).toBe(409);
    const short = await adminRequest(t.stack, 'POST', '/keys', { name: 'short', key: 'sk-jslm-short' });
    expect(short.status).toBe(400);
  });

  it('answers 429 with Retry-After past the requests per minute', async () => {
    const { key } = await createKey(t.stack, { requests_per_minute: 2 });
    for (let i = 0; i < 2; i++) {
      const res = await completionRequest(t.stack.edgeUrl, key, { prompt: PROMPT, max_tokens: 1 });
      expect(res.status).toBe(200);
      await res.body?.cancel();
    }
    const refused = await completionRequest(t.stack.edgeUrl, key, { prompt: PROMPT, max_tokens: 1 });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(((await refused.json()) as ApiErrorBody).error).toMatchObject({
      type: 'requests',
      code: 'rate_limit_exceeded',
    });
  });

  it('answers 429 insufficient_quota once the daily quota is spent', async () => {
    const promptTokens = loadTokenizer().encode(PROMPT).length;
    // Exactly one request's reservation: the second cannot fit, whatever the first used.
    const { key } = await createKey(t.stack, { tokens_per_day: promptTokens + 4 });
    const first = await completionRequest(t.stack.edgeUrl, key, { prompt: PROMPT, max_tokens: 4 });
    expect(first.status).toBe(200);
    await first.body?.cancel();
    const second = await completionRequest(t.stack.edgeUrl, key, { prompt: PROMPT, max_tokens: 4 });
    expect(second.status).toBe(429);
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await second.json()) as ApiErrorBody).error).toMatchObject({
      type: 'insufficient_quota',
      code: 'insufficient_quota',
    });
  });

  it('stops the generation upstream when the client goes away, and settles the usage', async () => {
    const { id, key } = await createKey(t.stack);
    const client = new AbortController();
    const res = await fetch(`${t.stack.edgeUrl}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'japanese-stablelm-base-alpha-7b',
        prompt: PROMPT,
        max_tokens: 1500,
        stream: true,
      }),
      signal: client.signal,
    });
    expect(res.status).toBe(200);
    const gone = t.logText().split('generate.client_gone').length;
    await expect(
      (async () => {
        for await (const data of sseData(res)) if (data.includes('"choices"')) client.abort();
      })(),
    ).rejects.toThrow();

    // Through the edge and the supervisor to the GPU function, which stops generating.
    await eventually(
      async () => t.logText().split('generate.client_gone').length,
      (n) => n > gone,
    );
    expect(t.logText().split('generate.client_gone').length).toBeGreaterThan(gone);
    const promptTokens = loadTokenizer().encode(PROMPT).length;
    const usage = await eventually(
      () => keyUsage(t.stack, id),
      (u) => u.open_reservations === 0,
    );
    expect(usage.open_reservations).toBe(0);
    expect(usage.tokens_today).toBeGreaterThan(promptTokens);
    expect(usage.tokens_today).toBeLessThan(promptTokens + 1500);
  });

  it('ends a stream with an error event when the GPU function dies, and settles the usage', async () => {
    const { id, key } = await createKey(t.stack);
    const maxTokens = 1500;
    const res = await completionRequest(t.stack.edgeUrl, key, {
      prompt: PROMPT,
      max_tokens: maxTokens,
      seed: 1,
      stream: true,
    });
    expect(res.status).toBe(200);
    const events: string[] = [];
    let killed = false;
    for await (const data of sseData(res)) {
      events.push(data);
      if (!killed && data.startsWith('{') && 'choices' in JSON.parse(data)) {
        killed = true;
        t.stack.supervisor.signal('SIGKILL');
      }
    }
    expect(killed).toBe(true);
    expect(events).not.toContain('[DONE]');
    const last = JSON.parse(events.at(-1)!) as ApiErrorBody;
    expect(last.error).toMatchObject({ type: 'server_error', code: 'upstream_error' });

    // Settled to what was produced: the prompt and some tokens, not the whole reservation.
    const promptTokens = loadTokenizer().encode(PROMPT).length;
    const usage = await eventually(
      () => keyUsage(t.stack, id),
      (u) => u.open_reservations === 0,
    );
    expect(usage.open_reservations).toBe(0);
    expect(usage.tokens_today).toBeGreaterThan(promptTokens);
    expect(usage.tokens_today).toBeLessThan(promptTokens + maxTokens);

    // The next request starts a new GPU function.
    const starts = t.stack.supervisor.starts;
    const after = await completionRequest(t.stack.edgeUrl, key, { prompt: PROMPT, max_tokens: 2 });
    expect(after.status).toBe(200);
    expect(((await after.json()) as Completion).usage.completion_tokens).toBeGreaterThan(0);
    expect(t.stack.supervisor.starts).toBe(starts + 1);
  });
});
