// POST /v1/chat/completions through the official `openai` client: the conversation becomes a
// prompt through the chat template and runs the completions path. The loopback backend repeats
// the prompt's ids, so the reply is the rendered prompt cut at the template's turn marker.
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { DIALOGUE_TEMPLATE, parseChatTemplate, renderChat } from '../../edge/src/chat/template.ts';
import {
  api,
  type CreatedKey,
  call,
  createKey,
  MODEL_ID,
  ORIGIN,
  settledUsageOf,
  TOKENIZER_READY,
  tokenize,
} from './helpers.ts';

const MESSAGES = [{ role: 'user' as const, content: 'こんにちは' }];
/** What the default template makes of MESSAGES. */
const PROMPT = '以下は、ユーザーとAIアシスタントの会話です。\n\nユーザー：こんにちは\nアシスタント：';
/** The echoed prompt up to the first turn marker ("\nユーザー："). */
const REPLY = '以下は、ユーザーとAIアシスタントの会話です。\n';

let key: CreatedKey;
let client: OpenAI;
let promptTokens: number;

beforeAll(async () => {
  if (!TOKENIZER_READY) return;
  key = await createKey({ requests_per_minute: 1000 });
  client = new OpenAI({
    apiKey: key.key,
    baseURL: `${ORIGIN}/v1`,
    maxRetries: 0,
    fetch: (input, init) => call(new Request(input, init)),
  });
  promptTokens = (await tokenize(key.key, PROMPT)).length;
});

describe('the chat template', () => {
  it('renders a transcript that ends with the assistant prefix, the default system line first', () => {
    expect(renderChat(MESSAGES, DIALOGUE_TEMPLATE)).toBe(PROMPT);
    expect(
      renderChat(
        [
          { role: 'system', content: 'あなたは親切です。' },
          { role: 'user', content: '一' },
          { role: 'assistant', content: '二' },
          { role: 'user', content: '三' },
        ],
        DIALOGUE_TEMPLATE,
      ),
    ).toBe('あなたは親切です。\n\nユーザー：一\nアシスタント：二\nユーザー：三\nアシスタント：');
  });

  it('continues a conversation that ends with an assistant message', () => {
    const prompt = renderChat([...MESSAGES, { role: 'assistant', content: 'はい、' }], DIALOGUE_TEMPLATE);
    expect(prompt.endsWith('\nアシスタント：はい、')).toBe(true);
  });

  it('takes a JSON setting that replaces fields, and refuses anything else', () => {
    const qa = parseChatTemplate(
      '{"default_system": "", "user_prefix": "Q: ", "assistant_prefix": "A:", "stop": ["\\nQ:"]}',
    );
    expect(renderChat(MESSAGES, qa)).toBe('Q: こんにちは\nA:');
    expect(qa.stop).toEqual(['\nQ:']);
    expect(parseChatTemplate('dialogue')).toEqual(DIALOGUE_TEMPLATE);
    for (const bad of ['chatml', '[]', '{"user": "x"}', '{"stop": [""]}', '{"user_prefix": 1}']) {
      expect(() => parseChatTemplate(bad), bad).toThrow(/^CHAT_TEMPLATE/);
    }
  });
});

describe.skipIf(!TOKENIZER_READY)('chat completions', () => {
  it('chat.completions.create: a chat.completion cut at the turn marker, with usage', async () => {
    const own = await createKey();
    const ownClient = client.withOptions({ apiKey: own.key });
    const completion = await ownClient.chat.completions.create({
      model: MODEL_ID,
      messages: MESSAGES,
      max_completion_tokens: promptTokens + 4,
    });
    expect(completion.id).toMatch(/^chatcmpl-/);
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe(MODEL_ID);
    expect(completion.system_fingerprint).toMatch(/^fp_/);
    expect(completion.choices).toEqual([
      {
        index: 0,
        message: { role: 'assistant', content: REPLY, refusal: null },
        logprobs: null,
        finish_reason: 'stop',
      },
    ]);
    const usage = completion.usage as OpenAI.CompletionUsage;
    expect(usage.prompt_tokens).toBe(promptTokens);
    expect(usage.completion_tokens).toBeGreaterThan(0);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    // The same limits as completions: the key paid for what the model produced.
    expect((await settledUsageOf(own.id)).tokens_today).toBe(usage.total_tokens);
  });

  it('streams chat.completion.chunk deltas: the role first, then content, then the finish and usage', async () => {
    const stream = await client.chat.completions.create({
      model: MODEL_ID,
      messages: MESSAGES,
      n: 2,
      stream: true,
      stream_options: { include_usage: true },
    });
    const text = ['', ''];
    const roles: (string | undefined)[][] = [[], []];
    const finish: (string | null)[] = [null, null];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      expect(chunk.system_fingerprint).toMatch(/^fp_/);
      usage = chunk.usage ?? usage;
      for (const choice of chunk.choices) {
        roles[choice.index]?.push(choice.delta.role);
        text[choice.index] += choice.delta.content ?? '';
        finish[choice.index] = choice.finish_reason ?? finish[choice.index] ?? null;
      }
    }
    // Sample 1 starts one id further on; both stop at a turn marker.
    expect(text[0]).toBe(REPLY);
    expect(finish).toEqual(['stop', 'stop']);
    for (const r of roles) expect(r[0]).toBe('assistant');
    expect(roles.flat().filter((r) => r !== undefined)).toHaveLength(2);
    expect(usage?.prompt_tokens).toBe(promptTokens);
  });

  it('takes the Hugging Face id as the model and parameters of completions (stop, seed, top_k)', async () => {
    const res = await api(key.key, '/v1/chat/completions', {
      model: 'stabilityai/japanese-stablelm-base-alpha-7b',
      messages: MESSAGES,
      stop: 'ユーザー',
      seed: 7,
      top_k: 40,
      max_tokens: 30,
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as OpenAI.ChatCompletion;
    expect(body.model).toBe(MODEL_ID);
    expect(body.choices[0]?.message.content).toBe('以下は、');
    expect(res.headers.get('x-ratelimit-remaining-requests')).not.toBeNull();
  });

  it('refuses bad requests with 400 naming the chat field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ messages: undefined }, 'messages'],
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'tool', content: 'x', tool_call_id: 'a' }] }, 'messages[0].role'],
      [
        { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
        'messages[0].content[0].type',
      ],
      [{ messages: [{ role: 'user', content: 'x', extra: 1 }] }, 'messages[0].extra'],
      [{ temperature: 5 }, 'temperature'],
      [{ n: 1000 }, 'n'],
      [{ max_completion_tokens: -1 }, 'max_completion_tokens'],
      [{ tools: [{ type: 'function', function: { name: 'f' } }] }, 'tools'],
      [{ response_format: { type: 'json_object' } }, 'response_format'],
      [{ logprobs: true }, 'logprobs'],
      [{ prompt: 'x' }, 'prompt'],
      [{ echo: true }, 'echo'],
      [{ frobnicate: 1 }, 'frobnicate'],
      [{ messages: [{ role: 'user', content: '長い文章。'.repeat(2000) }] }, 'messages'],
    ];
    for (const [change, param] of cases) {
      const refused = client.chat.completions.create({
        model: MODEL_ID,
        messages: MESSAGES,
        ...change,
      } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);
      await expect(refused, param).rejects.toBeInstanceOf(OpenAI.BadRequestError);
      await expect(refused, param).rejects.toMatchObject({ status: 400, param });
    }
    const unknown = client.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES });
    await expect(unknown).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});
