// A request's place in its key's limits, from the worker's side: admitted before its body is
// parsed (a revoked key or a spent budget is refused without that work), its tokens taken once
// its size is known, and settled to the real usage when it ends.

import type { Env } from '../env.ts';
import { rateLimitHeaders } from '../http/ratelimit-headers.ts';
import { forgetKey } from '../keys/recent-keys.ts';
import type { KeyRecord } from '../keys/store.ts';
import { edgeSettings } from '../settings.ts';
import { configOf, limiterOf } from './client.ts';
import { refusalError } from './refusal.ts';
import type { RateState, ReserveResult } from './types.ts';

const nextTurn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

function refused(
  key: KeyRecord,
  result: Exclude<ReserveResult, { ok: true }>,
  tokens: number,
  concurrent?: number,
) {
  // The limiter knows of a revocation before KV does: stop trusting the remembered record.
  if (result.refusal === 'disabled') forgetKey(key.hash);
  return refusalError(
    result.refusal,
    result.retryAfterMs,
    { tokens, limit: result.state.limitTokens, ...(concurrent === undefined ? {} : { concurrent }) },
    rateLimitHeaders(result.state),
  );
}

/** Counts a request that costs no tokens; returns its rate-limit headers or throws the refusal. */
export async function countRequest(env: Env, key: KeyRecord): Promise<Record<string, string>> {
  const result = await limiterOf(env, key.id).count(configOf(key));
  if (!result.ok) throw refused(key, result, 0);
  return rateLimitHeaders(result.state);
}

export class Admission {
  private readonly env: Env;
  private readonly key: KeyRecord;
  private readonly reservationId: number;
  private state: RateState;
  private settled = false;

  private constructor(env: Env, key: KeyRecord, reservationId: number, state: RateState) {
    this.env = env;
    this.key = key;
    this.reservationId = reservationId;
    this.state = state;
  }

  /** Counts the request against the key's limits; throws the refusal (429, or 401 if revoked). */
  static async admit(env: Env, key: KeyRecord): Promise<Admission> {
    // Limits a key was made without (older records) take the deployment's defaults.
    const config = configOf(key);
    const limits = { ...edgeSettings(env).defaultLimits, ...config.limits };
    const result = await limiterOf(env, key.id).admit({ ...config, limits });
    if (!result.ok) throw refused(key, result, 0, limits.concurrent_requests);
    return new Admission(env, key, result.reservationId, result.state);
  }

  /** The x-ratelimit-* headers: requests as admitted, tokens as last reserved. */
  get headers(): Record<string, string> {
    return rateLimitHeaders(this.state);
  }

  /** Reserves the most this request can use (prompt + max_tokens); throws the refusal. */
  async take(tokens: number): Promise<void> {
    const result = await limiterOf(this.env, this.key.id).take(
      configOf(this.key),
      this.reservationId,
      tokens,
    );
    const requests = {
      limitRequests: this.state.limitRequests,
      remainingRequests: this.state.remainingRequests,
      resetRequestsMs: this.state.resetRequestsMs,
    };
    this.state = { ...result.state, ...requests };
    if (!result.ok) {
      this.settled = true; // the limiter settled the refused request at 0 tokens
      throw refused(this.key, { ...result, state: this.state }, tokens);
    }
  }

  /**
   * Settles now and waits for it: for a request that ends before it generated anything, so its
   * answer leaves only once it no longer counts as in flight. Once, as `settle`.
   */
  async settleNow(usedTokens: number): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await limiterOf(this.env, this.key.id)
      .settle(this.reservationId, usedTokens)
      .catch((err: unknown) => console.error(`settling reservation failed: ${String(err)}`));
  }

  /**
   * Settles the reservation to `usedTokens()` once (later calls do nothing): a turn of the event
   * loop after the answer left, then after `after()` (the end of the generation), and a turn
   * later. Where the limiter object shares the worker's thread its commit would otherwise delay
   * the answer, and settling can only lower a charge already made in full.
   */
  settle(
    ctx: { waitUntil(promise: Promise<unknown>): void },
    usedTokens: () => number,
    after: () => Promise<unknown> = () => Promise.resolve(),
  ): void {
    if (this.settled) return;
    this.settled = true;
    ctx.waitUntil(
      nextTurn()
        .then(after)
        .catch(() => undefined)
        .then(nextTurn)
        .then(() => limiterOf(this.env, this.key.id).settle(this.reservationId, usedTokens()))
        .then(
          () => undefined,
          (err: unknown) => console.error(`settling reservation failed: ${String(err)}`),
        ),
    );
  }
}
