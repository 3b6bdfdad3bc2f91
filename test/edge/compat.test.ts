// What common clients expect around the API: the Hugging Face id as a model alias, vLLM's
// max_model_len, CORS for browsers (preflights without a key), x-request-id on every answer and
// system_fingerprint naming the model build.
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  type CreatedKey,
  call,
  complete,
  createKey,
  MODEL_ID,
  ORIGIN,
  readSse,
  TOKENIZER_READY,
} from './helpers.ts';

const HF_ID = 'stabilityai/japanese-stablelm-base-alpha-7b';
const APP = 'https://app.example';

let key: CreatedKey;
beforeAll(async () => {
  key = await createKey({ requests_per_minute: 1000 });
});

const get = (path: string, headers: Record<string, string> = {}, env: Partial<Cloudflare.Env> = {}) =>
  call(new Request(`${ORIGIN}${path}`, { headers: { authorization: `Bearer ${key.key}`, ...headers } }), {
    env,
  });

describe('the model alias and max_model_len', () => {
  it('lists the model with max_model_len and finds it by either id, slash or %2F', async () => {
    const list = (await (await get('/v1/models')).json()) as { data: Record<string, unknown>[] };
    expect(list.data).toEqual([expect.objectContaining({ id: MODEL_ID, max_model_len: 2048 })]);
    for (const path of [MODEL_ID, HF_ID, encodeURIComponent(HF_ID)]) {
      const res = await get(`/v1/models/${path}`);
      expect(res.status, path).toBe(200);
      expect(((await res.json()) as { id: string }).id).toBe(MODEL_ID);
    }
    expect((await get('/v1/models/stabilityai/other')).status).toBe(404);
    const client = new OpenAI({
      apiKey: key.key,
      baseURL: `${ORIGIN}/v1`,
      maxRetries: 0,
      fetch: (input, init) => call(new Request(input, init)),
    });
    expect((await client.models.retrieve(HF_ID)).id).toBe(MODEL_ID);
  });

  it.skipIf(!TOKENIZER_READY)(
    'completes and tokenizes for the alias, answering with the model id',
    async () => {
      const res = await complete(key.key, { model: HF_ID, prompt: [300, 301], max_tokens: 2 });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { model: string }).model).toBe(MODEL_ID);
      expect((await api(key.key, '/v1/tokenize', { model: HF_ID, prompt: 'a' })).status).toBe(200);
    },
  );
});

describe('x-request-id', () => {
  const REQ_ID = /^req_[0-9a-f]{32}$/;

  it('is on every answer: successes, errors, unknown routes, the health check', async () => {
    const ids = [
      (await call(new Request(`${ORIGIN}/healthz`))).headers.get('x-request-id'),
      (await get('/v1/models')).headers.get('x-request-id'),
      (await call(new Request(`${ORIGIN}/v1/models`))).headers.get('x-request-id'), // 401
      (await get('/v1/nowhere')).headers.get('x-request-id'), // 404
      (await api(key.key, '/v1/completions', 'not json')).headers.get('x-request-id'), // 400
    ];
    for (const id of ids) expect(id).toMatch(REQ_ID);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("echoes a client's plain id and replaces anything else", async () => {
    const mine = 'client-7f3a:01';
    expect((await get('/v1/models', { 'x-request-id': mine })).headers.get('x-request-id')).toBe(mine);
    for (const bad of ['x'.repeat(129), 'a b', 'a;b', '<id>']) {
      const res = await call(new Request(`${ORIGIN}/healthz`, { headers: { 'x-request-id': bad } }));
      expect(res.headers.get('x-request-id')).toMatch(REQ_ID);
    }
  });
});

describe('CORS', () => {
  const allowed = { CORS_ALLOWED_ORIGINS: `${APP}, https://other.example` };
  const preflight = (origin: string, env: Partial<Cloudflare.Env>, path = '/v1/chat/completions') =>
    call(
      new Request(`${ORIGIN}${path}`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type, x-stainless-os',
        },
      }),
      { env },
    );

  it('answers a preflight from an allowed origin without a key, never allowing credentials', async () => {
    const res = await preflight(APP, allowed);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(APP);
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    expect(res.headers.get('access-control-allow-headers')).toBe('authorization,content-type,x-stainless-os');
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    expect(res.headers.get('x-request-id')).toMatch(/^req_/);
  });

  it('gives other origins, or any when unset, no allowance', async () => {
    expect(
      (await preflight('https://evil.example', allowed)).headers.get('access-control-allow-origin'),
    ).toBeNull();
    expect((await preflight(APP, {})).headers.get('access-control-allow-origin')).toBeNull();
    expect(
      (await preflight(APP, allowed, '/admin/keys')).headers.get('access-control-allow-origin'),
    ).toBeNull();
    const any = await preflight('https://anyone.example', { CORS_ALLOWED_ORIGINS: '*' });
    expect(any.headers.get('access-control-allow-origin')).toBe('*');
    expect(any.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('lets an allowed page read answers, errors included, and their rate-limit headers', async () => {
    const ok = await get('/v1/models', { origin: APP }, allowed);
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP);
    expect(ok.headers.get('access-control-expose-headers')).toContain('x-ratelimit-remaining-requests');
    expect(ok.headers.get('vary')).toContain('Origin');
    const refused = await call(new Request(`${ORIGIN}/v1/models`, { headers: { origin: APP } }), {
      env: allowed,
    });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe(APP);
  });
});

describe.skipIf(!TOKENIZER_READY)('system_fingerprint', () => {
  it('names the model build in completions and their chunks (fp_ + MODEL_BUILD)', async () => {
    const json = (await (await complete(key.key, { prompt: [300], max_tokens: 1 })).json()) as {
      system_fingerprint: string;
    };
    expect(json.system_fingerprint).toBe('fp_jslm-base-alpha-7b');
    const res = await call(
      new Request(`${ORIGIN}/v1/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL_ID, prompt: [300], max_tokens: 2, stream: true }),
      }),
      { env: { MODEL_BUILD: '3f9c2a1b7e04' } },
    );
    const chunks = (await readSse(res)).flatMap((e) => ('data' in e ? [e.data] : []));
    expect(chunks.length).toBeGreaterThan(0);
    for (const chunk of chunks) expect(chunk).toMatchObject({ system_fingerprint: 'fp_3f9c2a1b7e04' });
  });
});
