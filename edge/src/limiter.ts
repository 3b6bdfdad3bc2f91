import { DurableObject } from 'cloudflare:workers';
import type { Env } from './env.ts';
import type { CreateResult, ReplaceResult, StoredKey } from './keys/record-table.ts';
import type { KeyRecord } from './keys/store.ts';
import { Ledger } from './limits/ledger.ts';
import type { KeyConfig, RateState, ReserveResult, TakeResult, UsageReport } from './limits/types.ts';

/**
 * One object per API key, SQLite-backed: the key's authoritative record, and its limits and
 * quotas. The object runs one call at a time and every call is a single synchronous
 * transaction, so concurrent requests of a key can never overspend, concurrent admin changes
 * never overwrite each other, and everything is on disk before the call returns.
 */
export class KeyLimiter extends DurableObject<Env> {
  private readonly ledger: Ledger;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.ledger = new Ledger(ctx.storage.sql);
  }

  /** Reserves one request and `tokens` tokens, or says which limit refuses them. */
  reserve(fallback: KeyConfig, tokens: number): ReserveResult {
    return this.ctx.storage.transactionSync(() => this.ledger.reserve(fallback, tokens, Date.now()));
  }

  /** Counts one request before its size is known (see Ledger.admit). */
  admit(fallback: KeyConfig): ReserveResult {
    return this.ctx.storage.transactionSync(() => this.ledger.admit(fallback, Date.now()));
  }

  /** Reserves the tokens of an admitted request. */
  take(fallback: KeyConfig, reservationId: number, tokens: number): TakeResult {
    return this.ctx.storage.transactionSync(() =>
      this.ledger.take(fallback, reservationId, tokens, Date.now()),
    );
  }

  /** Counts one request that costs no tokens. */
  count(fallback: KeyConfig): ReserveResult {
    return this.ctx.storage.transactionSync(() => this.ledger.count(fallback, Date.now()));
  }

  settle(reservationId: number, usedTokens: number): boolean {
    return this.ctx.storage.transactionSync(() => this.ledger.settle(reservationId, usedTokens));
  }

  state(fallback: KeyConfig): RateState {
    return this.ledger.state(fallback, Date.now());
  }

  usage(fallback: KeyConfig): UsageReport {
    return this.ledger.usage(fallback, Date.now());
  }

  keyRecord(): StoredKey | null {
    return this.ledger.records.get();
  }

  createKeyRecord(record: KeyRecord): CreateResult {
    return this.ctx.storage.transactionSync(() => this.ledger.records.create(record));
  }

  replaceKeyRecord(record: KeyRecord, expectedVersion: number): ReplaceResult {
    return this.ctx.storage.transactionSync(() => this.ledger.records.replace(record, expectedVersion));
  }
}
