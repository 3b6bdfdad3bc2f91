// Key records this isolate found in KV lately, by key hash. Every /v1 route asks the key's
// limiter object (completions to reserve, the others to count the request), and that object
// holds the key's record: revoking changes it at once, so a revoked key is refused on its next
// request even from here. Only enabled records are kept, so enabling a key again reads KV.

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
