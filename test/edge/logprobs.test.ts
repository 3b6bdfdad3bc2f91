// Log-probabilities and prompt scoring through the edge, in OpenAI's shape, and the exact
// requests lm-evaluation-harness sends. The loopback backend scores id i as -(i % 7 + 1) / 10
// with alternatives i, i + 1, ... (one less each), so every value here is known.
import { beforeAll, describe, expect, it } from 'vitest';
import { api, type CreatedKey, complete, createKey, readSse, TOKENIZER_READY } from './helpers.ts';

interface Logprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}
interface Choice {
  text: string;
  index: number;
  logprobs: Logprobs | null;
  finish_reason: string;
}

const score = (id: number) => -((id % 7) + 1) / 10;
let key: CreatedKey;
let decodeOne: (id: number) => Promise<string>;

beforeAll(async () => {
  if (!TOKENIZER_READY) return;
  key = await createKey({ requests_per_minute: 1000 });
  decodeOne = async (id) => {
    const res = await api(key.key, '/v1/detokenize', { tokens: [id] });
    return ((await res.json()) as { prompt: string }).prompt;
  };
});

/** The backend "generates" the prompt's ids again, cyclically. */
const cyclic = (ids: number[], n: number) => Array.from({ length: n }, (_, i) => ids[i % ids.length]!);

describe.skipIf(!TOKENIZER_READY)('log-probabilities through the edge', () => {
  it('gives tokens, token_logprobs, top_logprobs and text_offset for generated tokens', async () => {
    const ids = [1000, 2001, 3002];
    const res = await complete(key.key, { prompt: ids, max_tokens: 4, logprobs: 2 });
    expect(res.status).toBe(200);
    const choice = ((await res.json()) as { choices: Choice[] }).choices[0] as Choice;
    const expected = cyclic(ids, 4);
    const lp = choice.logprobs as Logprobs;
    expect(lp.token_logprobs).toEqual(expected.map(score));
    expect(lp.tokens).toEqual(await Promise.all(expected.map(decodeOne)));
    // Alternatives keyed by the same token texts; the first is the token itself.
    for (const [i, id] of expected.entries()) {
      const top = lp.top_logprobs[i] as Record<string, number>;
      expect(Object.keys(top)).toHaveLength(2);
      expect(top[await decodeOne(id)]).toBeCloseTo(score(id), 6);
    }
    let offset = 0;
    lp.tokens.forEach((t, i) => {
      expect(lp.text_offset[i]).toBe(offset);
      offset += t.length;
    });
    expect(choice.text).toBe(lp.tokens.join(''));
  });

  it('lm-evaluation-harness loglikelihood: echo + logprobs scores the prompt (first null), max_tokens 0 and 1', async () => {
    const context = [1000, 2001];
    const continuation = [3002, 4003];
    for (const maxTokens of [0, 1]) {
      const res = await complete(key.key, {
        prompt: [[...context, ...continuation]],
        max_tokens: maxTokens,
        temperature: 0,
        logprobs: 1,
        echo: true,
        seed: 1234,
      });
      expect(res.status).toBe(200);
      const choice = ((await res.json()) as { choices: Choice[] }).choices[0] as Choice;
      const lp = choice.logprobs as Logprobs;
      const all = [...context, ...continuation];
      expect(lp.token_logprobs.slice(0, 4)).toEqual([null, ...all.slice(1).map(score)]);
      expect(lp.top_logprobs[0]).toBeNull();
      // What the harness sums: the continuation's log-probabilities.
      const sum = (lp.token_logprobs.slice(context.length, 4) as number[]).reduce((a, b) => a + b, 0);
      expect(sum).toBeCloseTo(score(3002) + score(4003), 6);
      expect(lp.tokens).toHaveLength(4 + maxTokens);
      expect(choice.text.startsWith(lp.tokens.slice(0, 4).join(''))).toBe(true);
    }
    // max_tokens 0 without scoring asks for nothing: a 400 naming it.
    const nothing = await complete(key.key, { prompt: context, max_tokens: 0 });
    expect(nothing.status).toBe(400);
    expect(((await nothing.json()) as { error: { param: string } }).error.param).toBe('max_tokens');
  });

  it('lm-evaluation-harness generate-until: five stop strings, greedy', async () => {
    const res = await complete(key.key, {
      prompt: [[1000, 2001, 3002]],
      max_tokens: 8,
      temperature: 0,
      stop: ['\n\n', 'Question:', '</s>', '<|im_end|>', '。'],
      seed: 1234,
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: Choice[] };
    expect(body.choices).toHaveLength(1);
    expect(body.choices[0]?.finish_reason).toMatch(/^(length|stop)$/);
  });

  it('streams each chunk with the entries of its own text', async () => {
    const ids = [1000, 2001, 3002];
    const res = await complete(key.key, { prompt: ids, max_tokens: 3, logprobs: 1, stream: true });
    const chunks = (await readSse(res)).flatMap((e) =>
      'data' in e ? [e.data as { choices: Choice[] }] : [],
    );
    const entries = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.logprobs?.token_logprobs ?? []));
    expect(entries).toEqual(ids.map(score));
  });

  it('include_stop_str_in_output keeps the stop string that ended a choice (vLLM)', async () => {
    const ids = [1000, 2001, 3002];
    const stop = await decodeOne(2001);
    const cut = await complete(key.key, { prompt: ids, max_tokens: 3, stop: [stop] });
    const kept = await complete(key.key, {
      prompt: ids,
      max_tokens: 3,
      stop: [stop],
      include_stop_str_in_output: true,
    });
    const text = async (res: Response) =>
      (((await res.json()) as { choices: Choice[] }).choices[0] as Choice).text;
    const first = await decodeOne(1000);
    expect(await text(cut)).toBe(first);
    expect(await text(kept)).toBe(first + stop);
  });

  it('refuses logprobs above 5 and a non-integer, naming the parameter', async () => {
    for (const logprobs of [6, 1.5, 'all']) {
      const res = await complete(key.key, { prompt: [5, 6], logprobs });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe('logprobs');
    }
  });
});
