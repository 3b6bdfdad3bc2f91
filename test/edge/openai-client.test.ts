// The official `openai` npm client against the worker, inside workerd: its requests go through
// the worker's fetch handler.
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { type CreatedKey, call, createKey, MODEL_ID, ORIGIN, TOKENIZER_READY, tokenize } from './helpers.ts';

let key: CreatedKey;
let client: OpenAI;
const PROMPT = '富士山は日本で一番高い山です。';

beforeAll(async () => {
  if (!TOKENIZER_READY) return;
  key = await createKey({ requests_per_minute: 100 });
  client = new OpenAI({
    apiKey: key.key,
    baseURL: `${ORIGIN}/v1`,
    maxRetries: 0,
    fetch: (input, init) => call(new Request(input, init)),
  });
});

describe.skipIf(!TOKENIZER_READY)('openai npm client', () => {
  it('completions.create', async () => {
    const promptIds = await tokenize(key.key, PROMPT);
    const completion = await client.completions.create({
      model: MODEL_ID,
      prompt: PROMPT,
      max_tokens: promptIds.length,
      temperature: 0,
    });
    expect(completion.object).toBe('text_completion');
    expect(completion.choices[0]?.text).toBe(PROMPT); // the echo backend repeats the prompt
    expect(completion.choices[0]?.finish_reason).toBe('length');
    expect(completion.usage).toEqual({
      prompt_tokens: promptIds.length,
      completion_tokens: promptIds.length,
      total_tokens: 2 * promptIds.length,
    });
  });

  it('completions.create with stream: true', async () => {
    const stream = await client.completions.create({
      model: MODEL_ID,
      prompt: PROMPT,
      max_tokens: 40,
      stop: ['山です'],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe('富士山は日本で一番高い');
    expect(finish).toBe('stop');
    expect(usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('surfaces errors as typed exceptions', async () => {
    const refused = client.completions.create({ model: MODEL_ID, prompt: PROMPT, n: 1000 });
    await expect(refused).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(refused).rejects.toMatchObject({ status: 400, param: 'n' });

    const stranger = new OpenAI({
      apiKey: 'sk-jslm-nope',
      baseURL: `${ORIGIN}/v1`,
      maxRetries: 0,
      fetch: (input, init) => call(new Request(input, init)),
    });
    await expect(stranger.completions.create({ model: MODEL_ID, prompt: 'x' })).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
  });

  it('reads logprobs and a scored echo through the client', async () => {
    const scored = await client.completions.create({
      model: MODEL_ID,
      prompt: [[1000, 2001, 3002]],
      max_tokens: 0,
      echo: true,
      logprobs: 1,
    });
    const lp = scored.choices[0]?.logprobs;
    expect(lp?.token_logprobs?.[0]).toBeNull();
    // The loopback backend scores id i as -(i % 7 + 1) / 10.
    expect(lp?.token_logprobs?.slice(1)).toEqual([2001, 3002].map((id) => -((id % 7) + 1) / 10));
    expect(lp?.tokens).toHaveLength(3);
    expect(lp?.text_offset?.[0]).toBe(0);
    const generated = await client.completions.create({
      model: MODEL_ID,
      prompt: [1000],
      max_tokens: 2,
      logprobs: 2,
    });
    expect(
      generated.choices[0]?.logprobs?.top_logprobs?.every((t) => Object.keys(t ?? {}).length === 2),
    ).toBe(true);
  });

  it('lists models', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL_ID]);
  });
});
