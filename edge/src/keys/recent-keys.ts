// Key records this isolate found in KV lately, by key hash. Only the completion route uses them,
// because its limiter object re-checks the key on every request: revoking writes `disabled` to
// that object at once, so a revoked key is refused on its next completion even from here.
// Only enabled records are kept, so enabling a key again always reads KV.

import type { KeyRecord } from './store.ts';

/** Bounds how stale a record's other fields (name, limits fallback) can be. */
const TTL_MS = 60_000;
const MAX_ENTRIES = 1_000;

const recent = new Map<string, { record: KeyRecord; until: number }>();

export function recentKey(hash: string, now = Date.now()): KeyRecord | null {
  const entry = recent.get(hash);
  if (!entry) return null;
  if (entry.until > now) return entry.record;
  recent.delete(hash);
  return null;
}

export function rememberKey(record: KeyRecord, now = Date.now()): void {
  recent.delete(record.hash);
  if (record.disabled) return;
  // Maps iterate in insertion order: the first entry is the oldest.
  if (recent.size >= MAX_ENTRIES) recent.delete(recent.keys().next().value as string);
  recent.set(record.hash, { record, until: now + TTL_MS });
}

export function forgetKey(hash: string): void {
  recent.delete(hash);
}
