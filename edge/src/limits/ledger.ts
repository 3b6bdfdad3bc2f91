// The accounting of one API key, kept in the Durable Object's SQLite storage.
//
// Rate limits use a sliding 60-second log: every request leaves a row (time, tokens), and the
// limits count the rows of the last minute exactly. A row first holds the tokens reserved
// (prompt + max_tokens) and is settled to the real usage when the request ends, giving back
// the rest. Daily and monthly quotas are running totals per UTC period, adjusted the same way.
// Every method runs synchronously, so one call is one atomic step of the object.
//
// A completion is admitted in two steps: `admit` before its body is read (the request counts,
// a revoked key or a spent budget is refused at once, no tokens yet), then `take` once its
// size is known. `count` is `admit` for routes that cost no tokens. `reserve` does both at once.

import { KeyRecordTable } from '../keys/record-table.ts';
import type {
  KeyConfig,
  KeyLimits,
  RateState,
  Refusal,
  ReserveResult,
  TakeResult,
  UsageReport,
} from './types.ts';

export const WINDOW_MS = 60_000;
/** A reservation never settled (the worker died) stays charged in full; its row goes after this. */
const UNSETTLED_RETENTION_MS = 60 * 60_000;
const DAY_RETENTION_DAYS = 40;
/**
 * An open reservation older than this no longer counts as in flight (a worker that died
 * without settling must not hold the key's concurrency forever); no generation runs this long.
 */
const IN_FLIGHT_MS = 15 * 60_000;
const MONTH_RETENTION_MONTHS = 13;

interface WindowTotals {
  count: number;
  tokens: number;
  /** Newest request and newest request with tokens in the window (0 when none). */
  lastAt: number;
  lastTokensAt: number;
}

export const dayPeriod = (now: number) => `d:${new Date(now).toISOString().slice(0, 10)}`;
export const monthPeriod = (now: number) => `m:${new Date(now).toISOString().slice(0, 7)}`;

export function msUntilNextUtcDay(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1) - now;
}

export function msUntilNextUtcMonth(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) - now;
}

export class Ledger {
  private readonly sql: SqlStorage;
  readonly records: KeyRecordTable;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    this.records = new KeyRecordTable(sql);
    // AUTOINCREMENT: ids are never reused, so a late settle cannot touch a newer reservation.
    sql.exec(`CREATE TABLE IF NOT EXISTS reservation (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      at_ms INTEGER NOT NULL,
      tokens INTEGER NOT NULL,
      settled INTEGER NOT NULL DEFAULT 0,
      day TEXT NOT NULL,
      month TEXT NOT NULL)`);
    sql.exec('CREATE INDEX IF NOT EXISTS reservation_at ON reservation (at_ms)');
    sql.exec('CREATE TABLE IF NOT EXISTS period_usage (period TEXT PRIMARY KEY, tokens INTEGER NOT NULL)');
    sql.exec(
      'CREATE TABLE IF NOT EXISTS key_config (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL)',
    );
  }

  /**
   * The key's limits and state as this object knows them: from its record (the source of
   * truth), else from the configuration copy older versions of the admin API stored here. Both
   * win over the (eventually consistent) KV copy the worker passes as `fallback`.
   */
  storedConfig(): KeyConfig | null {
    const fromRecord = this.records.config();
    if (fromRecord) return fromRecord;
    const row = this.sql.exec<{ json: string }>('SELECT json FROM key_config WHERE id = 1').toArray()[0];
    return row ? (JSON.parse(row.json) as KeyConfig) : null;
  }

  reserve(fallback: KeyConfig, tokens: number, now: number): ReserveResult {
    const { limits, disabled } = this.storedConfig() ?? fallback;
    this.prune(now);
    const win = this.window(now);
    const refuse = (refusal: Refusal, retryAfterMs: number | null) =>
      ({ ok: false, refusal, retryAfterMs, state: rateState(limits, win, now) }) as const;

    if (disabled) return refuse('disabled', null);
    if (tokens > limits.tokens_per_minute) return refuse('request_too_large', null);
    if (win.count + 1 > limits.requests_per_minute) {
      return refuse('requests_per_minute', this.requestsRetryMs(win, limits, now));
    }
    const tokenRefusal = this.tokenRefusal(limits, win, tokens, now);
    if (tokenRefusal) return refuse(tokenRefusal.refusal, tokenRefusal.retryAfterMs);

    const id = this.insertRow(now, tokens, false);
    const after: WindowTotals = {
      count: win.count + 1,
      tokens: win.tokens + tokens,
      lastAt: now,
      lastTokensAt: tokens > 0 ? now : win.lastTokensAt,
    };
    return { ok: true, reservationId: id, state: rateState(limits, after, now) };
  }

  /**
   * Counts one request of the key before anything about its size is known: refuses a disabled
   * key, a full request window, and a token budget already spent (minute, day or month). The
   * row holds no tokens until `take`.
   */
  admit(fallback: KeyConfig, now: number): ReserveResult {
    return this.admitRow(fallback, now, false);
  }

  /** `admit` for a request that costs no tokens: counted, and settled at once. */
  count(fallback: KeyConfig, now: number): ReserveResult {
    return this.admitRow(fallback, now, true);
  }

  /**
   * Reserves `tokens` for an admitted request. A refusal settles the row at 0 tokens: the
   * request still counts towards requests per minute.
   */
  take(fallback: KeyConfig, reservationId: number, tokens: number, now: number): TakeResult {
    const { limits } = this.storedConfig() ?? fallback;
    const row = this.sql
      .exec<{ tokens: number; settled: number }>(
        'SELECT tokens, settled FROM reservation WHERE id = ?',
        reservationId,
      )
      .toArray()[0];
    if (!row || row.settled || row.tokens !== 0) {
      throw new Error(`reservation ${reservationId} is not an open admission`);
    }
    const win = this.window(now);
    const refusal =
      tokens > limits.tokens_per_minute
        ? { refusal: 'request_too_large' as const, retryAfterMs: null }
        : this.tokenRefusal(limits, win, tokens, now);
    if (refusal) {
      this.sql.exec('UPDATE reservation SET settled = 1 WHERE id = ?', reservationId);
      return { ok: false, ...refusal, state: rateState(limits, win, now) };
    }
    this.sql.exec('UPDATE reservation SET tokens = ? WHERE id = ?', tokens, reservationId);
    this.addToPeriod(dayPeriod(now), tokens, now);
    this.addToPeriod(monthPeriod(now), tokens, now);
    const after: WindowTotals = {
      ...win,
      tokens: win.tokens + tokens,
      lastTokensAt: tokens > 0 ? now : win.lastTokensAt,
    };
    return { ok: true, state: rateState(limits, after, now) };
  }

  private admitRow(fallback: KeyConfig, now: number, settled: boolean): ReserveResult {
    const { limits, disabled } = this.storedConfig() ?? fallback;
    const concurrent = limits.concurrent_requests ?? fallback.limits.concurrent_requests;
    this.prune(now);
    const win = this.window(now);
    const refuse = (refusal: Refusal, retryAfterMs: number | null) =>
      ({ ok: false, refusal, retryAfterMs, state: rateState(limits, win, now) }) as const;
    if (disabled) return refuse('disabled', null);
    if (win.count + 1 > limits.requests_per_minute) {
      return refuse('requests_per_minute', this.requestsRetryMs(win, limits, now));
    }
    if (!settled) {
      // Nothing left to spend: refused before the request is read. (One token stands for "any".)
      const spent = this.tokenRefusal(limits, win, 1, now);
      if (spent) return refuse(spent.refusal, spent.retryAfterMs);
      if (concurrent !== undefined && this.inFlight(now) >= concurrent) {
        return refuse('concurrent_requests', 1000);
      }
    }
    const id = this.insertRow(now, 0, settled);
    return {
      ok: true,
      reservationId: id,
      state: rateState(limits, { ...win, count: win.count + 1, lastAt: now }, now),
    };
  }

  /** Which token limit `tokens` more would pass, with when it would fit; null when none. */
  private tokenRefusal(
    limits: KeyLimits,
    win: WindowTotals,
    tokens: number,
    now: number,
  ): { refusal: Refusal; retryAfterMs: number | null } | null {
    if (win.tokens + tokens > limits.tokens_per_minute) {
      return {
        refusal: 'tokens_per_minute',
        retryAfterMs: this.tokensRetryMs(win.tokens + tokens - limits.tokens_per_minute, now),
      };
    }
    if (this.periodTokens(dayPeriod(now)) + tokens > limits.tokens_per_day) {
      return { refusal: 'tokens_per_day', retryAfterMs: msUntilNextUtcDay(now) };
    }
    if (this.periodTokens(monthPeriod(now)) + tokens > limits.tokens_per_month) {
      return { refusal: 'tokens_per_month', retryAfterMs: msUntilNextUtcMonth(now) };
    }
    return null;
  }

  /** Completions admitted and not settled yet (recent ones: see IN_FLIGHT_MS). */
  private inFlight(now: number): number {
    return this.sql
      .exec<{ n: number }>(
        'SELECT COUNT(*) AS n FROM reservation WHERE settled = 0 AND at_ms > ?',
        now - IN_FLIGHT_MS,
      )
      .one().n;
  }

  private insertRow(now: number, tokens: number, settled: boolean): number {
    const day = dayPeriod(now);
    const month = monthPeriod(now);
    const { id } = this.sql
      .exec<{ id: number }>(
        'INSERT INTO reservation (at_ms, tokens, settled, day, month) VALUES (?, ?, ?, ?, ?) RETURNING id',
        now,
        tokens,
        settled ? 1 : 0,
        day,
        month,
      )
      .one();
    if (tokens > 0) {
      this.addToPeriod(day, tokens, now);
      this.addToPeriod(month, tokens, now);
    }
    return id;
  }

  /** Replaces a reservation by the tokens really used (never more than reserved). Idempotent. */
  settle(reservationId: number, usedTokens: number): boolean {
    const row = this.sql
      .exec<{ tokens: number; settled: number; day: string; month: string }>(
        'SELECT tokens, settled, day, month FROM reservation WHERE id = ?',
        reservationId,
      )
      .toArray()[0];
    if (!row || row.settled) return false;
    const used = Math.min(row.tokens, Math.max(0, Math.round(usedTokens)));
    this.sql.exec('UPDATE reservation SET tokens = ?, settled = 1 WHERE id = ?', used, reservationId);
    if (used !== row.tokens) {
      this.sql.exec(
        'UPDATE period_usage SET tokens = tokens + ? WHERE period IN (?, ?)',
        used - row.tokens,
        row.day,
        row.month,
      );
    }
    return true;
  }

  state(fallback: KeyConfig, now: number): RateState {
    const { limits } = this.storedConfig() ?? fallback;
    this.prune(now);
    return rateState(limits, this.window(now), now);
  }

  usage(fallback: KeyConfig, now: number): UsageReport {
    const state = this.state(fallback, now);
    const open = this.sql
      .exec<{ n: number }>('SELECT COUNT(*) AS n FROM reservation WHERE settled = 0')
      .one().n;
    return {
      state,
      tokens_today: this.periodTokens(dayPeriod(now)),
      tokens_this_month: this.periodTokens(monthPeriod(now)),
      open_reservations: open,
    };
  }

  private window(now: number): WindowTotals {
    const row = this.sql
      .exec<{ count: number; tokens: number; lastAt: number; lastTokensAt: number }>(
        `SELECT COUNT(*) AS count, COALESCE(SUM(tokens), 0) AS tokens, COALESCE(MAX(at_ms), 0) AS lastAt,
           COALESCE(MAX(CASE WHEN tokens > 0 THEN at_ms END), 0) AS lastTokensAt
         FROM reservation WHERE at_ms > ?`,
        now - WINDOW_MS,
      )
      .one();
    return row;
  }

  /** When enough of the oldest requests leave the window for one more to fit. */
  private requestsRetryMs(win: WindowTotals, limits: KeyLimits, now: number): number {
    const row = this.sql
      .exec<{ at_ms: number }>(
        'SELECT at_ms FROM reservation WHERE at_ms > ? ORDER BY at_ms, id LIMIT 1 OFFSET ?',
        now - WINDOW_MS,
        win.count - limits.requests_per_minute,
      )
      .toArray()[0];
    return row ? row.at_ms + WINDOW_MS - now : WINDOW_MS;
  }

  /** When enough tokens leave the window to free `excess` of them. */
  private tokensRetryMs(excess: number, now: number): number {
    let freed = 0;
    const rows = this.sql.exec<{ at_ms: number; tokens: number }>(
      'SELECT at_ms, tokens FROM reservation WHERE at_ms > ? AND tokens > 0 ORDER BY at_ms, id',
      now - WINDOW_MS,
    );
    for (const row of rows) {
      freed += row.tokens;
      if (freed >= excess) return row.at_ms + WINDOW_MS - now;
    }
    return WINDOW_MS;
  }

  private periodTokens(period: string): number {
    const row = this.sql
      .exec<{ tokens: number }>('SELECT tokens FROM period_usage WHERE period = ?', period)
      .toArray()[0];
    return row?.tokens ?? 0;
  }

  private addToPeriod(period: string, tokens: number, now: number): void {
    const updated = this.sql.exec(
      'UPDATE period_usage SET tokens = tokens + ? WHERE period = ?',
      tokens,
      period,
    );
    if (updated.rowsWritten > 0) return;
    this.sql.exec('INSERT INTO period_usage (period, tokens) VALUES (?, ?)', period, tokens);
    this.prunePeriods(now); // a new period began: a good moment to drop old ones
  }

  private prune(now: number): void {
    this.sql.exec(
      'DELETE FROM reservation WHERE at_ms <= ? AND (settled = 1 OR at_ms <= ?)',
      now - WINDOW_MS,
      now - UNSETTLED_RETENTION_MS,
    );
  }

  private prunePeriods(now: number): void {
    const d = new Date(now);
    const oldestDay = dayPeriod(
      Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - DAY_RETENTION_DAYS),
    );
    const oldestMonth = monthPeriod(
      Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - MONTH_RETENTION_MONTHS, 1),
    );
    this.sql.exec("DELETE FROM period_usage WHERE period >= 'd:' AND period < ?", oldestDay);
    this.sql.exec("DELETE FROM period_usage WHERE period >= 'm:' AND period < ?", oldestMonth);
  }
}

function rateState(limits: KeyLimits, win: WindowTotals, now: number): RateState {
  return {
    limitRequests: limits.requests_per_minute,
    remainingRequests: Math.max(0, limits.requests_per_minute - win.count),
    resetRequestsMs: win.lastAt > 0 ? Math.max(0, win.lastAt + WINDOW_MS - now) : 0,
    limitTokens: limits.tokens_per_minute,
    remainingTokens: Math.max(0, limits.tokens_per_minute - win.tokens),
    resetTokensMs: win.lastTokensAt > 0 ? Math.max(0, win.lastTokensAt + WINDOW_MS - now) : 0,
  };
}
