// API key records in KV. Two entries per key:
//   key:<sha256 of the key>  -> KeyRecord (value and list metadata): how requests find their key
//   id:<key id>              -> the hash: how the admin API finds a key by its public id

import type { KeyLimits } from '../limits/types.ts';

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

const byHash = (hash: string) => `key:${hash}`;
const byId = (id: string) => `id:${id}`;

export async function findKeyByHash(kv: KVNamespace, hash: string): Promise<KeyRecord | null> {
  return kv.get<KeyRecord>(byHash(hash), 'json');
}

export async function findKeyById(kv: KVNamespace, id: string): Promise<KeyRecord | null> {
  const hash = await kv.get(byId(id));
  return hash ? findKeyByHash(kv, hash) : null;
}

export async function saveKey(kv: KVNamespace, record: KeyRecord): Promise<void> {
  // The record first: an id entry must never point at a missing record.
  await kv.put(byHash(record.hash), JSON.stringify(record), { metadata: record });
  await kv.put(byId(record.id), record.hash);
}

export async function listKeys(kv: KVNamespace): Promise<KeyRecord[]> {
  const records: KeyRecord[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await kv.list<KeyRecord>({ prefix: 'key:', ...(cursor ? { cursor } : {}) });
    for (const entry of page.keys) if (entry.metadata) records.push(entry.metadata);
    if (page.list_complete) break;
    cursor = page.cursor;
  }
  return records.sort((a, b) => a.created - b.created || a.id.localeCompare(b.id));
}
