// The authoritative record of one API key, kept by that key's limiter object (SQLite, one row).
// KV holds a copy written from it, for the lookup by key hash and for listings; KV is eventually
// consistent, this row is not, so the admin API reads and changes keys here. Every change bumps
// `version`, and a change applies only to the version it was computed from (compare-and-set),
// so two admins' changes can never silently overwrite each other.

import type { KeyConfig } from '../limits/types.ts';
import type { KeyRecord } from './store.ts';

export interface StoredKey {
  record: KeyRecord;
  version: number;
}

export type CreateResult =
  | { outcome: 'created' | 'same'; stored: StoredKey }
  | { outcome: 'conflict'; stored: StoredKey };

export type ReplaceResult = { ok: true; stored: StoredKey } | { ok: false; current: StoredKey | null };

/** What a creation may repeat without being a different creation. */
const sameCreation = (a: KeyRecord, b: KeyRecord) =>
  a.hash === b.hash &&
  a.name === b.name &&
  a.disabled === b.disabled &&
  JSON.stringify(a.limits) === JSON.stringify(b.limits);

export class KeyRecordTable {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS key_record (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      json TEXT NOT NULL,
      version INTEGER NOT NULL)`);
  }

  get(): StoredKey | null {
    const row = this.sql
      .exec<{ json: string; version: number }>('SELECT json, version FROM key_record WHERE id = 1')
      .toArray()[0];
    return row ? { record: JSON.parse(row.json) as KeyRecord, version: row.version } : null;
  }

  /** What the limits enforce, when this object holds the record. */
  config(): KeyConfig | null {
    const stored = this.get();
    return stored ? { limits: stored.record.limits, disabled: stored.record.disabled } : null;
  }

  /**
   * Stores a new key's record. Repeating the same creation changes nothing and says so (a
   * client may retry after a lost answer); anything else for an existing key is a conflict.
   */
  create(record: KeyRecord): CreateResult {
    const current = this.get();
    if (current) {
      return { outcome: sameCreation(current.record, record) ? 'same' : 'conflict', stored: current };
    }
    this.sql.exec('INSERT INTO key_record (id, json, version) VALUES (1, ?, 1)', JSON.stringify(record));
    return { outcome: 'created', stored: { record, version: 1 } };
  }

  /** Replaces the record if it is still at `expectedVersion`; else returns the current one. */
  replace(record: KeyRecord, expectedVersion: number): ReplaceResult {
    const current = this.get();
    if (!current || current.version !== expectedVersion || current.record.hash !== record.hash) {
      return { ok: false, current };
    }
    const version = current.version + 1;
    this.sql.exec(
      'UPDATE key_record SET json = ?, version = ? WHERE id = 1',
      JSON.stringify(record),
      version,
    );
    return { ok: true, stored: { record, version } };
  }
}
