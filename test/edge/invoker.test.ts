// The GPU function behind Cloud Run's invoker IAM: the worker mints ID tokens from its
// service-account key (verified here by a stand-in token endpoint with the key's public half),
// caches them per audience, refreshes them before they expire, and mints anew when the platform
// refuses one. Every edge test already runs this way; these check the token handling itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BACKEND_URL,
  type CreatedKey,
  complete,
  createKey,
  TOKEN_SERVER_URL,
  TOKENIZER_READY,
} from './helpers.ts';

let key: CreatedKey;
beforeAll(async () => {
  if (!TOKENIZER_READY) return;
  key = await createKey({ requests_per_minute: 1000 });
});
afterAll(async () => {
  await control('/lifetime/3600');
});

async function control(path: string): Promise<void> {
  await (await fetch(`${TOKEN_SERVER_URL}/control${path}`, { method: 'POST' })).arrayBuffer();
}

async function exchanges(): Promise<number> {
  return ((await (await fetch(`${TOKEN_SERVER_URL}/control/stats`)).json()) as { exchanges: number })
    .exchanges;
}

async function completes(options: { backend?: string } = {}): Promise<number> {
  const res = await complete(key.key, { prompt: [300, 301], max_tokens: 1 }, options);
  await res.arrayBuffer();
  return res.status;
}

describe.skipIf(!TOKENIZER_READY)('ID tokens for the invoker IAM', () => {
  it('mints a token once and reuses it; mints anew when the platform refuses it', async () => {
    expect(await completes()).toBe(200);
    const before = await exchanges();
    for (let i = 0; i < 5; i++) expect(await completes()).toBe(200);
    expect(await exchanges()).toBe(before);

    // The platform stops accepting the cached token: one refusal, one new token, no error.
    await control('/revoke');
    expect(await completes()).toBe(200);
    expect(await exchanges()).toBe(before + 1);
  });

  it('refreshes a token before it expires', async () => {
    await control('/lifetime/2');
    await control('/revoke');
    expect(await completes()).toBe(200); // refused once, then a 2-second token
    const minted = await exchanges();
    expect(await completes()).toBe(200);
    expect(await exchanges()).toBe(minted);
    // A quarter of its life before expiry (0.5 s) the next request gets a new one.
    await new Promise((r) => setTimeout(r, 1600));
    expect(await completes()).toBe(200);
    expect(await exchanges()).toBe(minted + 1);
    await control('/lifetime/3600');
  });

  it('asks for a token per audience: another GPU function URL gets its own', async () => {
    const later = (await (
      await fetch(`${BACKEND_URL}/control/listen-later/0`, { method: 'POST' })
    ).json()) as {
      url: string;
    };
    await new Promise((r) => setTimeout(r, 100));
    const before = await exchanges();
    expect(await completes({ backend: later.url })).toBe(200);
    expect(await exchanges()).toBe(before + 1);
  });

  it('answers 502 without details when no token can be had, and recovers', async () => {
    const later = (await (
      await fetch(`${BACKEND_URL}/control/listen-later/0`, { method: 'POST' })
    ).json()) as {
      url: string;
    };
    await new Promise((r) => setTimeout(r, 100));
    await control('/fail/1');
    const res = await complete(key.key, { prompt: [300, 301], max_tokens: 1 }, { backend: later.url });
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: { message: string; code: string } };
    expect(body.error.code).toBe('upstream_error');
    expect(body.error.message).not.toMatch(/invalid_grant|token|BEGIN/);
    expect(await completes({ backend: later.url })).toBe(200);
  });
});

describe.skipIf(!TOKENIZER_READY)('edge secrets', () => {
  it('refuses to sign with a secret under 32 bytes, or to use a malformed key, and says neither', async () => {
    const tag = `weak-${Date.now()}`;
    const weak = 'short-secret-of-31-bytes-xxxxxx';
    const res = await complete(
      key.key,
      { prompt: [300, 301], max_tokens: 1 },
      { env: { GPU_HMAC_SECRET: weak }, backend: `${BACKEND_URL}/s/tag=${tag}` },
    );
    expect(res.status).toBe(500);
    expect(await res.text()).not.toContain(weak);
    const broken = await complete(
      key.key,
      { prompt: [300, 301], max_tokens: 1 },
      { env: { GPU_INVOKER_KEY: '{"type":"service_account","private_key":"secret-material"}' } },
    );
    expect(broken.status).toBe(500);
    expect(await broken.text()).not.toContain('secret-material');
    const log = (await (await fetch(`${BACKEND_URL}/log`)).json()) as { tag: string | null }[];
    expect(log.filter((e) => e.tag === tag)).toEqual([]);
  });
});
