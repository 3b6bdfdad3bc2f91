// POST /v1/completions against the loopback wire-protocol backend, which "generates" the
// prompt's own ids again (cyclically): the expected text follows from the prompt.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  admin,
  api,
  backendLog,
  type CreatedKey,
  complete,
  createKey,
  MODEL_ID,
  readSse,
  scenario,
  settledUsageOf,
  TOKENIZER_READY,
  tokenize,
} from './helpers.ts';

interface Completion {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: { text: string; index: number; logprobs: null; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

const PROMPT = '吾輩は猫である。名前はまだ無い。';

let key: CreatedKey;
let promptIds: number[];

async function detokenize(ids: number[]): Promise<string> {
  const res = await api(key.key, '/v1/detokenize', { tokens: ids });
  return ((await res.json()) as { prompt: string }).prompt;
}

/** What the echo backend produces for `ids` with max_tokens `n`. */
const cyclic = (ids: number[], n: number) => Array.from({ length: n }, (_, i) => ids[i % ids.length]!);

beforeAll(async () => {
  if (!TOKENIZER_READY) return;
  key = await createKey({ requests_per_minute: 1000 });
  promptIds = await tokenize(key.key, PROMPT);
  expect(promptIds.length).toBeGreaterThan(5);
});

describe.skipIf(!TOKENIZER_READY)('non-streaming completions', () => {
  it('answers in OpenAI shape with usage, finish_reason and rate headers', async () => {
    const n = promptIds.length + 3;
    const res = await complete(key.key, { prompt: PROMPT, max_tokens: n, temperature: 0.7, seed: 1 });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Completion;
    expect(body.id).toMatch(/^cmpl-/);
    expect(body.object).toBe('text_completion');
    expect(body.model).toBe(MODEL_ID);
    expect(body.choices).toEqual([
      { text: await detokenize(cyclic(promptIds, n)), index: 0, logprobs: null, finish_reason: 'length' },
    ]);
    expect(body.usage).toEqual({
      prompt_tokens: promptIds.length,
      completion_tokens: n,
      total_tokens: promptIds.length + n,
    });
    for (const h of ['requests', 'tokens']) {
      expect(res.headers.get(`x-ratelimit-limit-${h}`)).toMatch(/^\d+$/);
      expect(res.headers.get(`x-ratelimit-remaining-${h}`)).toMatch(/^\d+$/);
      expect(res.headers.get(`x-ratelimit-reset-${h}`)).toMatch(/^(\d+ms|[\d.]+s|\d+m[\d.]+s)$/);
    }
  });

  it('accepts token ids, and a batch holding a single prompt', async () => {
    const ids = promptIds.slice(0, 4);
    const expected = await detokenize(cyclic(ids, 6));
    for (const prompt of [ids, [ids], [PROMPT]]) {
      const res = await complete(key.key, { prompt, max_tokens: 6 });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Completion;
      if (prompt[0] === PROMPT) expect(body.usage.prompt_tokens).toBe(promptIds.length);
      else expect(body.choices[0]?.text).toBe(expected);
    }
  });

  it('echoes the prompt before the completion', async () => {
    const res = await complete(key.key, { prompt: PROMPT, max_tokens: 2, echo: true });
    const body = (await res.json()) as Completion;
    expect(body.choices[0]?.text).toBe(PROMPT + (await detokenize(cyclic(promptIds, 2))));
    const ids = await complete(key.key, { prompt: promptIds, max_tokens: 2, echo: true });
    expect(((await ids.json()) as Completion).choices[0]?.text).toBe(
      (await detokenize(promptIds)) + (await detokenize(cyclic(promptIds, 2))),
    );
  });

  it("reports 'stop' when the model ends the text (end-of-text)", async () => {
    const res = await complete(key.key, { prompt: PROMPT, max_tokens: 50 }, { backend: scenario('eos=3') });
    const body = (await res.json()) as Completion;
    expect(body.choices[0]?.finish_reason).toBe('stop');
    expect(body.usage.completion_tokens).toBe(3);
    expect(body.choices[0]?.text).toBe(await detokenize(promptIds.slice(0, 3)));
  });

  it('charges the real usage, not the reservation', async () => {
    const own = await createKey();
    const res = await complete(own.key, { prompt: PROMPT, max_tokens: 500 }, { backend: scenario('eos=2') });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ratelimit-remaining-tokens')).toBe(String(100_000 - promptIds.length - 500));
    const usage = await settledUsageOf(own.id);
    expect(usage.tokens_today).toBe(promptIds.length + 2);
    expect(usage.state.remainingTokens).toBe(100_000 - promptIds.length - 2);
  });

  it('refuses a key revoked since its last completion, and serves it again once enabled', async () => {
    // The first completion leaves the key among the isolate's recent keys; the revocation must
    // still apply on the very next request.
    const own = await createKey();
    expect((await complete(own.key, { prompt: PROMPT, max_tokens: 1 })).status).toBe(200);
    expect((await admin('DELETE', `/keys/${own.id}`)).status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const refused = await complete(own.key, { prompt: PROMPT, max_tokens: 1 });
      expect(refused.status).toBe(401);
      expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/revoked/);
    }
    expect((await api(own.key, '/v1/models')).status).toBe(401);
    expect((await admin('PATCH', `/keys/${own.id}`, { disabled: false })).status).toBe(200);
    expect((await complete(own.key, { prompt: PROMPT, max_tokens: 1 })).status).toBe(200);
  });
});

describe.skipIf(!TOKENIZER_READY)('stop sequences', () => {
  it('cuts the text exactly before a stop sequence that spans tokens, and cancels the generation', async () => {
    // A stop made of the last character of one token and the first of the next.
    const pieces = await Promise.all(promptIds.map((id) => detokenize([id])));
    const i = pieces.findIndex((p, k) => k > 0 && p.length > 0 && (pieces[k + 1]?.length ?? 0) > 0);
    const stop = pieces[i]!.slice(-1) + pieces[i + 1]![0];
    const full = await detokenize(cyclic(promptIds, 200));
    const expected = full.slice(0, full.indexOf(stop));
    expect(expected.length).toBeGreaterThan(0);

    const tag = `stop-${Date.now()}`;
    const res = await complete(
      key.key,
      { prompt: PROMPT, max_tokens: 200, stop: ['never-seen', stop] },
      { backend: scenario(`delay=5,tag=${tag}`) },
    );
    const body = (await res.json()) as Completion;
    expect(body.choices[0]).toMatchObject({ text: expected, finish_reason: 'stop' });
    expect(body.usage.completion_tokens).toBeLessThan(200);

    await expect
      .poll(async () => (await backendLog(tag))[0]?.outcome, { timeout: 3000 })
      .toBe('client_closed');
    expect((await backendLog(tag))[0]!.tokensSent).toBeLessThan(200);
  });

  it('picks the earliest of several stop sequences', async () => {
    const full = await detokenize(cyclic(promptIds, 20));
    const res = await complete(key.key, { prompt: PROMPT, max_tokens: 20, stop: ['名前', '猫'] });
    const body = (await res.json()) as Completion;
    expect(body.choices[0]?.text).toBe(full.slice(0, full.indexOf('猫')));
  });

  it('releases held-back text when the stop sequence never completes', async () => {
    const n = promptIds.length; // the text ends with '。', the start of the stop sequence
    const res = await complete(key.key, { prompt: PROMPT, max_tokens: n, stop: '。X' });
    const body = (await res.json()) as Completion;
    expect(body.choices[0]).toMatchObject({ text: await detokenize(promptIds), finish_reason: 'length' });
  });
});

describe.skipIf(!TOKENIZER_READY)('streaming completions', () => {
  it('stops streaming at a stop sequence and cancels the generation upstream', async () => {
    const full = await detokenize(cyclic(promptIds, 200));
    const tag = `stream-stop-${Date.now()}`;
    const res = await complete(
      key.key,
      { prompt: PROMPT, max_tokens: 200, stop: '名前', stream: true },
      { backend: scenario(`delay=5,tag=${tag}`) },
    );
    const chunks = (await readSse(res)).flatMap((e) => ('data' in e ? [e.data as Completion] : []));
    expect(chunks.map((c) => c.choices[0]!.text).join('')).toBe(full.slice(0, full.indexOf('名前')));
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop');
    await expect
      .poll(async () => (await backendLog(tag))[0]?.outcome, { timeout: 3000 })
      .toBe('client_closed');
    expect((await backendLog(tag))[0]!.tokensSent).toBeLessThan(200);
  });

  it('streams OpenAI chunks ending with [DONE], with the same text as without streaming', async () => {
    const n = 12;
    const res = await complete(key.key, { prompt: PROMPT, max_tokens: n, stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('x-ratelimit-remaining-requests')).toMatch(/^\d+$/);
    const events = await readSse(res);
    expect(events.at(-1)).toEqual({ done: true });
    const chunks = events.flatMap((e) => ('data' in e ? [e.data as Completion] : []));
    expect(chunks.length).toBeGreaterThan(2);
    for (const c of chunks) {
      expect(c).toMatchObject({ object: 'text_completion', model: MODEL_ID, id: chunks[0]!.id });
      expect(c.usage).toBeUndefined();
    }
    expect(chunks.map((c) => c.choices[0]!.text).join('')).toBe(await detokenize(cyclic(promptIds, n)));
    expect(chunks.slice(0, -1).every((c) => c.choices[0]!.finish_reason === null)).toBe(true);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('length');
  });

  it('adds a usage chunk with stream_options.include_usage, and applies stop sequences', async () => {
    const full = await detokenize(cyclic(promptIds, 30));
    const res = await complete(key.key, {
      prompt: PROMPT,
      max_tokens: 30,
      stream: true,
      stream_options: { include_usage: true },
      stop: '名前',
      echo: true,
    });
    const events = await readSse(res);
    const chunks = events.flatMap((e) => ('data' in e ? [e.data as Completion] : []));
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage.prompt_tokens).toBe(promptIds.length);
    expect(usageChunk.usage.completion_tokens).toBeGreaterThan(0);
    expect(usageChunk.usage.total_tokens).toBe(promptIds.length + usageChunk.usage.completion_tokens);
    const text = chunks
      .slice(0, -1)
      .map((c) => c.choices[0]!.text)
      .join('');
    expect(text).toBe(PROMPT + full.slice(0, full.indexOf('名前')));
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
  });
});

describe.skipIf(!TOKENIZER_READY)('several prompts and n completions', () => {
  // The echo backend's sample j of a prompt starts j ids further on.
  const sample = (ids: number[], j: number, count: number) =>
    Array.from({ length: count }, (_, i) => ids[(i + j) % ids.length]!);

  it('answers prompts x n choices in prompt-major order with summed usage and one reservation', async () => {
    const own = await createKey({ requests_per_minute: 1000 });
    const a = promptIds.slice(0, 4);
    const b = promptIds.slice(2, 7);
    const res = await complete(own.key, { prompt: [a, b], n: 2, max_tokens: 5 });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Completion;
    const expected = [
      await detokenize(sample(a, 0, 5)),
      await detokenize(sample(a, 1, 5)),
      await detokenize(sample(b, 0, 5)),
      await detokenize(sample(b, 1, 5)),
    ];
    expect(body.choices.map((c) => [c.index, c.text, c.finish_reason])).toEqual(
      expected.map((text, i) => [i, text, 'length']),
    );
    // Every prompt once, every choice's tokens.
    expect(body.usage).toEqual({ prompt_tokens: 9, completion_tokens: 20, total_tokens: 29 });
    const usage = await settledUsageOf(own.id);
    expect(usage.tokens_today).toBe(29);
    // One request against the per-minute count, however many choices.
    expect(Number(res.headers.get('x-ratelimit-remaining-requests'))).toBe(999);
  });

  it('streams the choices interleaved, each chunk tagged by index, each finishing', async () => {
    const texts = ['富士山', '日本一'];
    const ids = await Promise.all(texts.map((t) => tokenize(key.key, t)));
    const res = await complete(key.key, {
      prompt: texts,
      n: 2,
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.status).toBe(200);
    const events = await readSse(res);
    const chunks = events.flatMap((e) => ('data' in e ? [e.data as Record<string, unknown>] : []));
    const text: string[] = ['', '', '', ''];
    const finish: (string | null)[] = [null, null, null, null];
    const order: number[] = [];
    for (const c of chunks) {
      for (const choice of (c.choices ?? []) as {
        index: number;
        text: string;
        finish_reason: string | null;
      }[]) {
        text[choice.index] += choice.text;
        finish[choice.index] = choice.finish_reason ?? finish[choice.index]!;
        if (choice.text) order.push(choice.index);
      }
    }
    const expected = await Promise.all(
      [0, 1, 2, 3].map((i) => detokenize(sample(ids[Math.floor(i / 2)]!, i % 2, 4))),
    );
    expect(text).toEqual(expected);
    expect(finish).toEqual(['length', 'length', 'length', 'length']);
    // Interleaved, not one choice after another.
    expect(order.indexOf(3)).toBeLessThan(order.lastIndexOf(0));
    const usage = chunks.at(-1)?.usage as { prompt_tokens: number; completion_tokens: number };
    expect(usage.completion_tokens).toBe(16);
    expect(events.at(-1)).toEqual({ done: true });
  });

  it('cuts each choice at its own stop sequence', async () => {
    const ids = promptIds.slice(0, 6);
    const full = await detokenize(sample(ids, 0, 6));
    const stop = await detokenize(ids.slice(2, 3));
    const res = await complete(key.key, { prompt: [ids], n: 2, max_tokens: 6, stop: [stop] });
    const body = (await res.json()) as Completion;
    expect(body.choices[0]?.text).toBe(full.slice(0, full.indexOf(stop)));
    expect(body.choices[0]?.finish_reason).toBe('stop');
    expect(body.choices[1]?.finish_reason).toBe('stop');
  });
});

describe.skipIf(!TOKENIZER_READY)('requests in flight per key', () => {
  it('refuses one more than the key may have in flight with 429, and serves again once one ends', async () => {
    const own = await createKey({ requests_per_minute: 1000, concurrent_requests: 1 });
    const slow = await complete(
      own.key,
      { prompt: PROMPT, max_tokens: 8, stream: true },
      { backend: scenario('delay=150') },
    );
    expect(slow.status).toBe(200);
    const refused = await complete(own.key, { prompt: PROMPT, max_tokens: 2 });
    expect(refused.status).toBe(429);
    const body = (await refused.json()) as { error: { code: string; message: string; type: string } };
    expect(body.error).toMatchObject({ code: 'rate_limit_exceeded', type: 'requests' });
    expect(body.error.message).toMatch(/in flight for this key \(at most 1\)/);
    expect(refused.headers.get('retry-after')).toBe('1');
    await slow.text(); // the first one ends and is settled
    await settledUsageOf(own.id);
    expect((await complete(own.key, { prompt: PROMPT, max_tokens: 2 })).status).toBe(200);
  });
});
