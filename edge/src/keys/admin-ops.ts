// What the admin API does to a key, with the key's limiter object as the source of truth:
// reads come from it, changes are compare-and-set on its version, and the KV copy (used to find
// a key by its hash) is written from what the object holds after the change.

import { ApiError, notFound } from '../../../shared/src/errors.ts';
import type { Env } from '../env.ts';
import { limiterOf } from '../limits/client.ts';
import { sha256Hex } from './api-key.ts';
import type { CreateResult, StoredKey } from './record-table.ts';
import { findLegacyKeyById, type KeyRecord, writeKeyCopy } from './store.ts';

/** Attempts at a change that lost a race with another change (each recomputed from fresh). */
const CHANGE_ATTEMPTS = 5;

/**
 * A key's id follows from its hash, so creating the same key twice reaches the same limiter
 * object: a retried creation is recognised instead of making a second key. The id reveals
 * nothing about the key (a hash of its hash).
 */
export async function keyIdFor(hash: string): Promise<string> {
  return `key_${(await sha256Hex(`jslm key id\n${hash}`)).slice(0, 16)}`;
}

const copyFailed = () =>
  new ApiError(
    503,
    'service_unavailable',
    'The key was saved, but its lookup copy could not be written yet; repeat the same request.',
    { code: 'key_copy_pending', headers: { 'retry-after': '1' } },
  );

/** Writes the KV copy, and again if a newer version landed meanwhile, so KV ends at the newest. */
async function syncCopy(env: Env, stored: StoredKey): Promise<StoredKey> {
  const stub = limiterOf(env, stored.record.id);
  let written = stored;
  for (let i = 0; i < CHANGE_ATTEMPTS; i++) {
    try {
      await writeKeyCopy(env.API_KEYS, written);
    } catch (err) {
      console.error(`writing the KV copy of ${written.record.id} failed: ${String(err)}`);
      throw copyFailed();
    }
    const now = await stub.keyRecord();
    if (!now || now.version <= written.version) return written;
    written = now;
  }
  return written;
}

/** The key as its limiter object holds it; a key from before that, from KV (version 0). */
export async function readKey(env: Env, id: string): Promise<StoredKey | null> {
  const stored = await limiterOf(env, id).keyRecord();
  if (stored) return stored;
  const legacy = await findLegacyKeyById(env.API_KEYS, id);
  return legacy ? { record: legacy, version: 0 } : null;
}

export async function createKey(env: Env, record: KeyRecord): Promise<CreateResult> {
  const result = await limiterOf(env, record.id).createKeyRecord(record);
  if (result.outcome === 'conflict') return result;
  return { outcome: result.outcome, stored: await syncCopy(env, result.stored) };
}

/**
 * Applies `change` to the current record. With `ifVersion` (the client's If-Match) the change
 * applies only to that version (412 otherwise); without it, a lost race is recomputed.
 */
export async function changeKey(
  env: Env,
  id: string,
  change: (record: KeyRecord) => KeyRecord,
  ifVersion?: number,
): Promise<StoredKey> {
  const stub = limiterOf(env, id);
  for (let attempt = 0; attempt < CHANGE_ATTEMPTS; attempt++) {
    let current = await stub.keyRecord();
    if (!current) {
      // Made before records lived here: adopt the KV record once, then change it here.
      const legacy = await findLegacyKeyById(env.API_KEYS, id);
      if (!legacy) throw notFound(`No API key with id '${id}'.`);
      const adopted = await stub.createKeyRecord(legacy);
      current = adopted.stored;
    }
    if (ifVersion !== undefined && current.version !== ifVersion) throw stale(current.version);
    const result = await stub.replaceKeyRecord(change(current.record), current.version);
    if (result.ok) return syncCopy(env, result.stored);
    if (ifVersion !== undefined) throw stale(result.current?.version ?? 0);
  }
  throw new ApiError(409, 'invalid_request_error', 'The key kept changing under this request; repeat it.', {
    code: 'key_busy',
  });
}

const stale = (version: number) =>
  new ApiError(412, 'invalid_request_error', `The key is at version ${version}, not the one in If-Match.`, {
    code: 'version_mismatch',
    headers: { etag: `"${version}"` },
  });
