// A client that hangs up on a non-streaming completion, through the worker's own binding (so
// the runtime, with wrangler.toml's compatibility flags, decides whether the worker hears of
// it): the worker must cancel the generation upstream and still charge what was produced.
import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import {
  BACKEND_URL,
  backendLog,
  createKey,
  MODEL_ID,
  ORIGIN,
  settledUsageOf,
  TOKENIZER_READY,
} from './helpers.ts';

describe.skipIf(!TOKENIZER_READY)('a client that hangs up before a non-streaming answer', () => {
  it('cancels the generation upstream and is charged for the tokens produced', async () => {
    const own = await createKey();
    const tag = `hang-up-${Date.now()}`;
    const firstId = 65001;
    await fetch(`${BACKEND_URL}/control/prompt/${firstId}/delay=40,tag=${tag}`, { method: 'POST' });
    const prompt = [firstId, 300, 301, 302];
    const maxTokens = 200; // 8 s at 40 ms per token: the hang-up comes long before the end
    const client = new AbortController();
    const pending = exports.default
      .fetch(
        new Request(`${ORIGIN}/v1/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${own.key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: MODEL_ID, prompt, max_tokens: maxTokens }),
          signal: client.signal,
        }),
      )
      .catch(() => null);
    await expect
      .poll(async () => (await backendLog(tag))[0]?.tokensSent ?? 0, { timeout: 5000 })
      .toBeGreaterThan(5);
    client.abort();
    await pending;

    await expect
      .poll(async () => (await backendLog(tag))[0]?.outcome, { timeout: 5000 })
      .toBe('client_closed');
    const sent = (await backendLog(tag))[0]!.tokensSent;
    expect(sent).toBeLessThan(maxTokens);
    const usage = await settledUsageOf(own.id);
    // The prompt and what reached the worker before it cancelled: never 0, never the reservation.
    expect(usage.tokens_today).toBeGreaterThan(prompt.length);
    expect(usage.tokens_today).toBeLessThanOrEqual(prompt.length + sent);
  }, 20_000);
});
