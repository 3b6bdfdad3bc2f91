// API key records in KV: copies written from each key's limiter object, which holds the record
// itself (keys/record-table.ts). One entry per key:
//   key:<sha256 of the key>  -> the record and its version (value and list metadata): how
//                               requests find their key, and what listings show
// Keys made before the limiter object held records also have id:<key id> -> hash; that entry is
// only read, to find such a key by its id once.

import type { KeyLimits } from '../limits/types.ts';
import type { StoredKey } from './record-table.ts';

export interface KeyRecord {
  id: string;
  name: string;
  /** SHA-256 of the key, hex. The key itself is never stored. */
  hash: string;
  /** `sk-jslm-...abcd`, to recognise a key in listings. */
  hint: string;
  limits: KeyLimits;
  /** Unix seconds. */
  created: number;
  disabled: boolean;
}

/** The KV copy: the record and the version of the limiter object's record it was written from. */
export type KeyCopy = KeyRecord & { version?: number };

const byHash = (hash: string) => `key:${hash}`;
const legacyById = (id: string) => `id:${id}`;

export async function findKeyByHash(kv: KVNamespace, hash: string): Promise<KeyCopy | null> {
  return kv.get<KeyCopy>(byHash(hash), 'json');
}

/** A key made before records lived in limiter objects, found through its id entry. */
export async function findLegacyKeyById(kv: KVNamespace, id: string): Promise<KeyRecord | null> {
  const hash = await kv.get(legacyById(id));
  return hash ? findKeyByHash(kv, hash) : null;
}

export async function writeKeyCopy(kv: KVNamespace, stored: StoredKey): Promise<void> {
  const copy: KeyCopy = { ...stored.record, version: stored.version };
  await kv.put(byHash(stored.record.hash), JSON.stringify(copy), { metadata: copy });
}

export async function listKeys(kv: KVNamespace): Promise<KeyCopy[]> {
  const records: KeyCopy[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await kv.list<KeyCopy>({ prefix: 'key:', ...(cursor ? { cursor } : {}) });
    for (const entry of page.keys) if (entry.metadata) records.push(entry.metadata);
    if (page.list_complete) break;
    cursor = page.cursor;
  }
  return records.sort((a, b) => a.created - b.created || a.id.localeCompare(b.id));
}
