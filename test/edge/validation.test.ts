// Bad input: every case is a 400 (or 404 for an unknown model) naming the parameter, and none
// of them costs the key any tokens.
import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  backendLog,
  type CreatedKey,
  call,
  createKey,
  MODEL_ID,
  ORIGIN,
  observedKv,
  scenario,
  settledUsageOf,
  TOKENIZER_READY,
} from './helpers.ts';

let key: CreatedKey;
beforeAll(async () => {
  if (!TOKENIZER_READY) return;
  key = await createKey({ requests_per_minute: 500 });
});

function post(body: BodyInit | null, headers: Record<string, string> = {}) {
  return call(
    new Request(`${ORIGIN}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json', ...headers },
      body,
    }),
  );
}

async function expectError(res: Response, status: number, param: string | null, message?: RegExp) {
  const body = (await res.json()) as { error: { message: string; type: string; param: string | null } };
  expect(res.status, body.error.message).toBe(status);
  expect(body.error.param, body.error.message).toBe(param);
  expect(body.error.type).toBe('invalid_request_error');
  if (message) expect(body.error.message).toMatch(message);
  expect(res.headers.get('x-ratelimit-remaining-requests')).toMatch(/^\d+$/);
}

const valid = { model: MODEL_ID, prompt: 'こんにちは', max_tokens: 4 };
const ids = (n: number) => Array.from({ length: n }, () => 300);

describe.skipIf(!TOKENIZER_READY)('request validation', () => {
  it('refuses malformed bodies', async () => {
    await expectError(await post('{"model": '), 400, null, /not valid JSON/);
    await expectError(await post('{"max_tokens": NaN}'), 400, null, /not valid JSON/);
    await expectError(await post(''), 400, null, /empty/);
    await expectError(await post('[1,2]'), 400, null, /JSON object/);
    await expectError(await post('"text"'), 400, null, /JSON object/);
    await expectError(await post(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 400, null, /UTF-8/);
  });

  it('refuses a body over the size limit, declared or not', async () => {
    const big = JSON.stringify({ ...valid, prompt: 'あ'.repeat(30_000) }); // ~90 kB, limit 64 KiB
    await expectError(await post(big), 400, null, /larger than 65536 bytes/);
    const bytes = new TextEncoder().encode(big);
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < bytes.length; i += 4096) c.enqueue(bytes.slice(i, i + 4096));
        c.close();
      },
    });
    await expectError(await post(stream), 400, null, /larger than/);
  });

  it('refuses bad prompts', async () => {
    const cases: [unknown, RegExp][] = [
      [undefined, /Missing required parameter/],
      ['', /must not be empty/],
      [[], /must not be empty/],
      [[[]], /must not be empty/],
      [new Array(21).fill('a'), /21 prompts/],
      [['a', [1]], /mixes/],
      [[1.5], /token ids/],
      [[-1], /token ids/],
      [[65536], /token ids/],
      [['a', 1], /mixes/],
      [[[1], 'a'], /mixes/],
      [[1, 'a'], /token ids/],
      [{ text: 'a' }, /string or an array/],
      [5, /string or an array/],
      ['ab\ud800cd', /lone UTF-16 surrogate/],
      ['\udc00', /lone UTF-16 surrogate/],
      [['\ud83d'], /lone UTF-16 surrogate/],
      [ids(2049), /context length/],
    ];
    for (const [prompt, message] of cases) {
      await expectError(await post(JSON.stringify({ ...valid, prompt })), 400, 'prompt', message);
    }
    // Escaped in the JSON text itself, the way a client would send a lone surrogate.
    await expectError(await post(`{"model":"${MODEL_ID}","prompt":"x\\ud800"}`), 400, 'prompt', /surrogate/);
  });

  it('refuses prompt + max_tokens beyond the context', async () => {
    await expectError(
      await post(JSON.stringify({ ...valid, prompt: ids(2000), max_tokens: 49 })),
      400,
      'max_tokens',
      /context length is 2048/,
    );
    await expectError(
      await post(JSON.stringify({ ...valid, prompt: ids(2048), max_tokens: 1 })),
      400,
      'prompt',
      /context length/,
    );
  });

  it('refuses wrong types and out-of-range numbers, naming the parameter', async () => {
    const cases: [string, unknown][] = [
      ['max_tokens', 0],
      ['max_tokens', -1],
      ['max_tokens', 1.5],
      ['max_tokens', '16'],
      ['max_tokens', 1e9],
      ['max_tokens', 2049],
      ['temperature', -0.1],
      ['temperature', 2.5],
      ['temperature', 'hot'],
      ['top_p', 0],
      ['top_p', 1.01],
      ['top_k', -2],
      ['top_k', 2.5],
      ['repetition_penalty', 0],
      ['repetition_penalty', 11],
      ['seed', -1],
      ['seed', 0.5],
      ['seed', 2 ** 60],
      ['stop', 5],
      ['stop', Array.from({ length: 17 }, (_, i) => `s${i}`)],
      ['logprobs', 6],
      ['min_p', 1.5],
      ['presence_penalty', 2.5],
      ['frequency_penalty', -3],
      ['logit_bias', { '70000': 1 }],
      ['logit_bias', { '5': -101 }],
      ['logit_bias', [1, 2]],
      ['min_tokens', -1],
      ['ignore_eos', 'yes'],
      ['include_stop_str_in_output', 1],
      ['stop', ['']],
      ['stop', ['ok', '\ud800']],
      ['stream', 'yes'],
      ['echo', 1],
      ['user', 5],
      ['user', 'u'.repeat(300)],
    ];
    for (const [param, value] of cases) {
      await expectError(await post(JSON.stringify({ ...valid, [param]: value })), 400, param);
    }
    // 1e400 parses to Infinity.
    await expectError(
      await post(`{"model":"${MODEL_ID}","prompt":"a","max_tokens":1e400}`),
      400,
      'max_tokens',
    );
  });

  it('refuses parameters it cannot honour instead of ignoring them', async () => {
    const cases: [string, unknown][] = [
      ['n', 0],
      ['n', 33],
      ['n', 1.5],
      ['best_of', 3],
      ['suffix', 'tail'],
      ['skip_special_tokens', false],
      ['spaces_between_special_tokens', false],
      ['functions', []],
      ['max_completion_tokens', 5],
    ];
    for (const [param, value] of cases) {
      await expectError(await post(JSON.stringify({ ...valid, [param]: value })), 400, param);
    }
    await expectError(
      await post(JSON.stringify({ ...valid, stream_options: { include_usage: true } })),
      400,
      'stream_options',
    );
    await expectError(
      await post(JSON.stringify({ ...valid, stream: true, stream_options: { include_usage: true, x: 1 } })),
      400,
      'stream_options.x',
    );
  });

  it('accepts those parameters at their neutral values', async () => {
    const res = await post(
      JSON.stringify({
        ...valid,
        n: 1,
        best_of: 1,
        logprobs: null,
        suffix: null,
        logit_bias: {},
        presence_penalty: 0,
        frequency_penalty: 0,
        user: 'someone',
        // vLLM's fields, neutral or on: accepted.
        top_k: -1,
        min_p: 0,
        skip_special_tokens: true,
        spaces_between_special_tokens: true,
        ignore_eos: false,
        min_tokens: 0,
        stop_token_ids: [],
        include_stop_str_in_output: false,
      }),
    );
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  });

  it('requires the served model', async () => {
    await expectError(await post(JSON.stringify({ ...valid, model: undefined })), 400, 'model');
    const res = await post(JSON.stringify({ ...valid, model: 'gpt-4' }));
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { param: 'model', code: 'model_not_found' } });
  });

  it('charged no tokens for any of it (each request counts)', async () => {
    const fresh = await createKey({ requests_per_minute: 500 });
    const before = key;
    key = fresh;
    await expectError(await post(JSON.stringify({ ...valid, max_tokens: 0 })), 400, 'max_tokens');
    await expectError(await post('nope'), 400, null);
    await expectError(
      await post(JSON.stringify({ ...valid, prompt: ids(2000), max_tokens: 100 })),
      400,
      'max_tokens',
    );
    key = before;
    const usage = await settledUsageOf(fresh.id);
    expect(usage.tokens_today).toBe(0);
    // The limiter is asked before a body is read, so malformed requests count as requests.
    expect(usage.state.remainingRequests).toBe(497);
  });
});

describe.skipIf(!TOKENIZER_READY)('hostile input', () => {
  const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

  it('answers huge and deeply nested values with a 400 whose message stays short', async () => {
    const bodies = [
      // 30,000 levels of nesting (60 kB) where a number, a model or a token id belongs.
      `{"model":"${MODEL_ID}","prompt":"a","max_tokens":${deep(30_000)}}`,
      `{"model":${deep(30_000)},"prompt":"a"}`,
      `{"model":"${MODEL_ID}","prompt":[1,${deep(30_000)}]}`,
      JSON.stringify({ ...valid, temperature: 'x'.repeat(60_000) }),
      JSON.stringify({ ...valid, model: 'm'.repeat(60_000) }),
      JSON.stringify({ ...valid, [`p${'q'.repeat(60_000)}`]: 1 }),
      JSON.stringify({ ...valid, stream: true, stream_options: { ['o'.repeat(60_000)]: true } }),
      JSON.stringify({ ...valid, prompt: [1, 'x'.repeat(60_000)] }),
    ];
    for (const body of bodies) {
      const res = await post(body);
      const text = await res.text();
      expect(res.status, text.slice(0, 200)).toBeLessThan(500);
      expect([400, 404]).toContain(res.status);
      expect(text.length, text.slice(0, 200)).toBeLessThan(600);
    }
  });

  it('never lets a value it describes throw (a nesting deeper than any stack)', async () => {
    const { parseCompletionParams } = await import('../../edge/src/completions/params.ts');
    const { preview } = await import('../../edge/src/http/fields.ts');
    let nested: unknown = [];
    for (let i = 0; i < 1_000_000; i++) nested = [nested];
    expect(preview(nested)).toBe('an array of 1 item');
    for (const field of ['max_tokens', 'model', 'temperature', 'seed']) {
      const attempt = () =>
        parseCompletionParams({ model: MODEL_ID, prompt: 'a', [field]: nested }, { maxChoices: 32 });
      expect(attempt).toThrow(expect.objectContaining({ status: expect.any(Number) }));
    }
    expect(() => parseCompletionParams({ model: MODEL_ID, prompt: [1, nested] }, { maxChoices: 32 })).toThrow(
      expect.objectContaining({ status: 400, param: 'prompt' }),
    );
  });

  it('caps the length of each stop sequence', async () => {
    await expectError(
      await post(JSON.stringify({ ...valid, stop: ['ok', 's'.repeat(257)] })),
      400,
      'stop',
      /256/,
    );
    const res = await post(JSON.stringify({ ...valid, stop: ['s'.repeat(256)] }));
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  });

  it('sends a temperature too small to sample with as 0 (greedy) instead of NaN-prone 1e-40', async () => {
    const tag = `tiny-t-${Date.now()}`;
    for (const [temperature, sent] of [
      [1e-40, 0],
      [5e-6, 0],
      [1e-5, 1e-5],
      [0.7, 0.7],
    ] as const) {
      const res = await call(
        new Request(`${ORIGIN}/v1/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ ...valid, temperature }),
        }),
        { backend: scenario(`tag=${tag}-${temperature}`) },
      );
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      expect((await backendLog(`${tag}-${temperature}`))[0]?.temperature, String(temperature)).toBe(sent);
    }
  });
});

describe('API keys of the wrong shape', () => {
  it('are refused before any KV read', async () => {
    const observed = observedKv(env.API_KEYS);
    for (const key of [
      'sk-jslm-short',
      `sk-jslm-${'x'.repeat(129)}`,
      `sk-jslm-${'+'.repeat(40)}`,
      `sk-other-${'x'.repeat(40)}`,
      `sk-jslm-${'x'.repeat(20)}.${'y'.repeat(20)}`,
    ]) {
      const res = await call(
        new Request(`${ORIGIN}/v1/models`, { headers: { authorization: `Bearer ${key}` } }),
        {
          env: { API_KEYS: observed.kv },
        },
      );
      expect(res.status, key).toBe(401);
    }
    expect(observed.reads).toEqual([]);
  });
});
