// The KeyLimiter's ledger, driven inside its Durable Object with explicit clock values.
import { evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import type { KeyLimiter } from '../../edge/src/limiter.ts';
import { Ledger, WINDOW_MS } from '../../edge/src/limits/ledger.ts';
import type { KeyConfig } from '../../edge/src/limits/types.ts';

const config = (limits: Partial<KeyConfig['limits']> = {}, disabled = false): KeyConfig => ({
  limits: {
    requests_per_minute: 3,
    tokens_per_minute: 100,
    tokens_per_day: 1000,
    tokens_per_month: 5000,
    concurrent_requests: 100,
    ...limits,
  },
  disabled,
});

let objects = 0;
function freshLimiter() {
  return env.KEY_LIMITER.get(env.KEY_LIMITER.idFromName(`ledger-test-${++objects}`));
}

/** Runs `fn` on a Ledger over the object's own SQLite storage. */
function withLedger<R>(stub: DurableObjectStub<KeyLimiter>, fn: (ledger: Ledger) => R): Promise<R> {
  return runInDurableObject(stub, (_instance, state) => fn(new Ledger(state.storage.sql)));
}

const T0 = Date.UTC(2026, 0, 31, 23, 59, 0); // one minute before a new day and a new month

describe('rate limits over a sliding minute', () => {
  it('counts requests exactly and says when the next one fits', async () => {
    await withLedger(freshLimiter(), (ledger) => {
      const c = config();
      const a = ledger.reserve(c, 10, T0);
      const b = ledger.reserve(c, 10, T0 + 1_000);
      const d = ledger.reserve(c, 10, T0 + 2_000);
      expect([a.ok, b.ok, d.ok]).toEqual([true, true, true]);
      expect(d.state.remainingRequests).toBe(0);
      expect(d.state.resetRequestsMs).toBe(WINDOW_MS);

      const refused = ledger.reserve(c, 10, T0 + 30_000);
      expect(refused).toMatchObject({ ok: false, refusal: 'requests_per_minute', retryAfterMs: 30_000 });
      // Exactly when the first request leaves the window, one more fits.
      expect(ledger.reserve(c, 10, T0 + WINDOW_MS - 1).ok).toBe(false);
      expect(ledger.reserve(c, 10, T0 + WINDOW_MS).ok).toBe(true);
    });
  });

  it('counts reserved tokens, gives back the unused part on settle, and never settles twice', async () => {
    await withLedger(freshLimiter(), (ledger) => {
      const c = config({ requests_per_minute: 100 });
      const big = ledger.reserve(c, 70, T0);
      if (!big.ok) throw new Error('refused');
      expect(big.state.remainingTokens).toBe(30);
      const refused = ledger.reserve(c, 40, T0 + 5_000);
      expect(refused).toMatchObject({ ok: false, refusal: 'tokens_per_minute', retryAfterMs: 55_000 });

      expect(ledger.settle(big.reservationId, 20)).toBe(true);
      expect(ledger.settle(big.reservationId, 0)).toBe(false);
      const fits = ledger.reserve(c, 40, T0 + 5_000);
      expect(fits.ok).toBe(true);
      expect(fits.state.remainingTokens).toBe(40);
    });
  });

  it('never settles for more than was reserved', async () => {
    await withLedger(freshLimiter(), (ledger) => {
      const c = config({ requests_per_minute: 100 });
      const r = ledger.reserve(c, 30, T0);
      if (!r.ok) throw new Error('refused');
      ledger.settle(r.reservationId, 1_000_000);
      expect(ledger.state(c, T0).remainingTokens).toBe(70);
    });
  });

  it('refuses a request larger than the per-minute budget outright', async () => {
    await withLedger(freshLimiter(), (ledger) => {
      expect(ledger.reserve(config(), 101, T0)).toMatchObject({
        ok: false,
        refusal: 'request_too_large',
        retryAfterMs: null,
      });
    });
  });

  it('refuses everything for a disabled key', async () => {
    await withLedger(freshLimiter(), (ledger) => {
      expect(ledger.reserve(config({}, true), 1, T0)).toMatchObject({ ok: false, refusal: 'disabled' });
    });
  });

  it("prefers the key's own record over the configuration passed in (the KV copy)", async () => {
    await withLedger(freshLimiter(), (ledger) => {
      ledger.records.create({
        id: 'key_0000000000000000',
        name: 'x',
        hash: 'h',
        hint: 'sk-jslm-...xxxx',
        created: 0,
        ...config({ requests_per_minute: 1 }),
      });
      expect(ledger.reserve(config({ requests_per_minute: 50 }), 1, T0).ok).toBe(true);
      expect(ledger.reserve(config({ requests_per_minute: 50 }), 1, T0)).toMatchObject({
        ok: false,
        refusal: 'requests_per_minute',
      });
    });
  });
});

describe('quotas per UTC day and month', () => {
  it('refuses past the daily quota until midnight UTC, then the monthly one', async () => {
    await withLedger(freshLimiter(), (ledger) => {
      const c = config({
        requests_per_minute: 1000,
        tokens_per_minute: 1000,
        tokens_per_day: 150,
        tokens_per_month: 250,
      });
      expect(ledger.reserve(c, 100, T0).ok).toBe(true);
      const refused = ledger.reserve(c, 100, T0 + 1_000);
      expect(refused).toMatchObject({ ok: false, refusal: 'tokens_per_day', retryAfterMs: 59_000 });

      const nextDay = T0 + 2 * WINDOW_MS; // 2026-02-01: a new day and a new month
      expect(ledger.reserve(c, 100, nextDay).ok).toBe(true);
      expect(ledger.usage(c, nextDay)).toMatchObject({ tokens_today: 100, tokens_this_month: 100 });
    });
  });

  it('refuses past the monthly quota until the first of the next month', async () => {
    await withLedger(freshLimiter(), (ledger) => {
      const c = config({
        requests_per_minute: 1000,
        tokens_per_minute: 1000,
        tokens_per_day: 1000,
        tokens_per_month: 150,
      });
      const start = Date.UTC(2026, 2, 30, 12, 0, 0);
      expect(ledger.reserve(c, 100, start).ok).toBe(true);
      const tomorrow = start + 24 * 3600_000;
      const refused = ledger.reserve(c, 100, tomorrow);
      expect(refused).toMatchObject({ ok: false, refusal: 'tokens_per_month' });
      if (refused.ok) throw new Error('accepted');
      expect(tomorrow + (refused.retryAfterMs ?? 0)).toBe(Date.UTC(2026, 3, 1));
    });
  });

  it('settles into the period the reservation was made in', async () => {
    await withLedger(freshLimiter(), (ledger) => {
      const c = config({ requests_per_minute: 1000, tokens_per_minute: 1000 });
      const r = ledger.reserve(c, 100, T0);
      if (!r.ok) throw new Error('refused');
      const nextDay = T0 + 2 * WINDOW_MS;
      ledger.reserve(c, 10, nextDay);
      ledger.settle(r.reservationId, 40);
      expect(ledger.usage(c, T0).tokens_today).toBe(40);
      expect(ledger.usage(c, nextDay).tokens_today).toBe(10);
    });
  });
});

describe('durability', () => {
  it('keeps usage when the object is evicted and restarted', async () => {
    const stub = freshLimiter();
    const c = config({ requests_per_minute: 2 });
    expect((await stub.reserve(c, 10)).ok).toBe(true);
    expect((await stub.reserve(c, 10)).ok).toBe(true);
    await evictDurableObject(stub);
    const after = await stub.reserve(c, 10);
    expect(after).toMatchObject({ ok: false, refusal: 'requests_per_minute' });
    expect(after.state.remainingTokens).toBe(80);
  });
});

describe('two-step admission (admit before the body, take once its size is known)', () => {
  it('admits a request without tokens, then takes them; a refused take still counts the request', async () => {
    await withLedger(freshLimiter(), (ledger) => {
      const c = config({ requests_per_minute: 10, tokens_per_minute: 100 });
      const a = ledger.admit(c, T0);
      if (!a.ok) throw new Error('refused');
      expect(a.state).toMatchObject({ remainingRequests: 9, remainingTokens: 100 });
      expect(ledger.take(c, a.reservationId, 60, T0)).toMatchObject({
        ok: true,
        state: { remainingTokens: 40 },
      });

      const b = ledger.admit(c, T0 + 1);
      if (!b.ok) throw new Error('refused');
      expect(ledger.take(c, b.reservationId, 101, T0 + 1)).toMatchObject({
        ok: false,
        refusal: 'request_too_large',
      });
      const d = ledger.admit(c, T0 + 2);
      if (!d.ok) throw new Error('refused');
      expect(ledger.take(c, d.reservationId, 50, T0 + 2)).toMatchObject({
        ok: false,
        refusal: 'tokens_per_minute',
        retryAfterMs: WINDOW_MS - 2,
      });
      // Three requests counted, only the first holds tokens; the refused ones are settled.
      expect(ledger.usage(c, T0 + 3)).toMatchObject({
        state: { remainingRequests: 7, remainingTokens: 40 },
        open_reservations: 1,
      });
      expect(() => ledger.take(c, d.reservationId, 1, T0 + 3)).toThrow(/not an open admission/);
    });
  });

  it('caps the completions a key has in flight; settling one makes room, a stale one stops counting', async () => {
    await withLedger(freshLimiter(), (ledger) => {
      const c = config({ requests_per_minute: 100, concurrent_requests: 2 });
      const a = ledger.admit(c, T0);
      const b = ledger.admit(c, T0 + 1);
      if (!a.ok || !b.ok) throw new Error('refused');
      expect(ledger.admit(c, T0 + 2)).toMatchObject({ ok: false, refusal: 'concurrent_requests' });
      // Requests that cost nothing (tokenize, models) are not in flight and still pass.
      expect(ledger.count(c, T0 + 2).ok).toBe(true);
      ledger.settle(a.reservationId, 0);
      expect(ledger.admit(c, T0 + 3).ok).toBe(true);
      expect(ledger.admit(c, T0 + 4)).toMatchObject({ ok: false, refusal: 'concurrent_requests' });
      // A reservation never settled (its worker died) stops holding a place after 15 minutes.
      expect(ledger.admit(c, T0 + 15 * 60_000 + 2).ok).toBe(true);
    });
    // Records made before the limit existed take the limit passed in (the deployment default).
    await withLedger(freshLimiter(), (ledger) => {
      const { concurrent_requests: _, ...older } = config().limits;
      const c = { limits: older, disabled: false } as KeyConfig;
      const withDefault = { ...c, limits: { ...older, concurrent_requests: 1 } };
      expect(ledger.admit(withDefault, T0).ok).toBe(true);
      expect(ledger.admit(withDefault, T0 + 1)).toMatchObject({ ok: false, refusal: 'concurrent_requests' });
      expect(ledger.admit(c, T0 + 2).ok).toBe(true);
    });
  });

  it('refuses at admission what no size can change: a disabled key, a full window, a spent budget', async () => {
    await withLedger(freshLimiter(), (ledger) => {
      expect(ledger.admit(config({}, true), T0)).toMatchObject({ ok: false, refusal: 'disabled' });
      const c = config({ requests_per_minute: 100, tokens_per_minute: 100, tokens_per_day: 30 });
      const a = ledger.admit(c, T0);
      if (!a.ok) throw new Error('refused');
      ledger.take(c, a.reservationId, 30, T0);
      expect(ledger.admit(c, T0 + 1)).toMatchObject({ ok: false, refusal: 'tokens_per_day' });
    });
    // Requests that cost nothing are counted too, and settled at once.
    await withLedger(freshLimiter(), (ledger) => {
      const one = config({ requests_per_minute: 2 });
      expect(ledger.count(one, T0).ok).toBe(true);
      expect(ledger.count(one, T0 + 1).ok).toBe(true);
      expect(ledger.count(one, T0 + 2)).toMatchObject({ ok: false, refusal: 'requests_per_minute' });
      expect(ledger.usage(one, T0 + 3).open_reservations).toBe(0);
    });
  });
});
