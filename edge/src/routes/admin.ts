// /admin/keys: create, list, show, change and revoke API keys. Behind ADMIN_TOKEN.

import { Hono } from 'hono';
import { createMiddleware } from 'hono/factory';
import { ApiError, badRequest, notFound, unauthorized } from '../../../shared/src/errors.ts';
import type { AppEnv } from '../app-env.ts';
import type { Env } from '../env.ts';
import { optionalBoolean, rejectUnknown, requireObject, wellFormedString } from '../http/fields.ts';
import { readJsonBody } from '../http/json-body.ts';
import { API_KEY_FORMAT, keyHint, newApiKey, newKeyId, secretsEqual, sha256Hex } from '../keys/api-key.ts';
import { findKeyByHash, findKeyById, type KeyRecord, listKeys, saveKey } from '../keys/store.ts';
import { configOf, limiterOf } from '../limits/client.ts';
import { parseLimits } from '../limits/parse.ts';
import { edgeSettings } from '../settings.ts';

const MAX_NAME_LENGTH = 100;
const ADMIN_BODY_BYTES = 16 * 1024;

const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  const expected = edgeSettings(c.env).adminToken;
  if (!expected) {
    throw new ApiError(403, 'permission_error', 'The admin API is disabled: ADMIN_TOKEN is not set.', {
      code: 'admin_disabled',
    });
  }
  const given = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '')?.[1] ?? '';
  if (!(await secretsEqual(given, expected)))
    throw unauthorized('Invalid admin token.', 'invalid_admin_token');
  await next();
});

/** A key as the admin API shows it: everything but the hash. */
const view = ({ hash: _, ...rest }: KeyRecord) => rest;

function parseChosenKey(v: unknown): string {
  // A caller-chosen key (e.g. the local stack's LOCAL_API_KEY) must be as hard to guess as a made one.
  if (typeof v !== 'string' || !API_KEY_FORMAT.test(v)) {
    throw badRequest("'key' must be 'sk-jslm-' followed by 32 to 128 of A-Z a-z 0-9 _ -.", 'key');
  }
  return v;
}

function parseName(v: unknown): string {
  const name = wellFormedString(v, 'name').trim();
  if (name === '' || name.length > MAX_NAME_LENGTH) {
    throw badRequest(`'name' must be 1 to ${MAX_NAME_LENGTH} characters.`, 'name');
  }
  return name;
}

async function existing(env: Env, id: string): Promise<KeyRecord> {
  const record = await findKeyById(env.API_KEYS, id);
  if (!record) throw notFound(`No API key with id '${id}'.`);
  return record;
}

/** KV is the record; the limiter object gets a copy at once, so a change applies without KV's delay. */
async function store(env: Env, record: KeyRecord): Promise<void> {
  await saveKey(env.API_KEYS, record);
  await limiterOf(env, record.id).configure(configOf(record));
}

export const admin = new Hono<AppEnv>();
admin.use('*', requireAdmin);

admin.post('/keys', async (c) => {
  const body = requireObject(await readJsonBody(c.req.raw, ADMIN_BODY_BYTES));
  rejectUnknown(body, new Set(['name', 'limits', 'key']));
  if (body.name === undefined) throw badRequest("Missing required parameter: 'name'.", 'name');
  const key = body.key === undefined ? newApiKey() : parseChosenKey(body.key);
  const hash = await sha256Hex(key);
  if (body.key !== undefined && (await findKeyByHash(c.env.API_KEYS, hash))) {
    throw new ApiError(409, 'invalid_request_error', 'This key already exists.', {
      param: 'key',
      code: 'key_exists',
    });
  }
  const record: KeyRecord = {
    id: newKeyId(),
    name: parseName(body.name),
    hash,
    hint: keyHint(key),
    limits: { ...edgeSettings(c.env).defaultLimits, ...parseLimits(body.limits) },
    created: Math.floor(Date.now() / 1000),
    disabled: false,
  };
  await store(c.env, record);
  // The only time the key itself leaves the worker.
  return c.json({ ...view(record), key }, 201);
});

admin.get('/keys', async (c) => c.json({ object: 'list', data: (await listKeys(c.env.API_KEYS)).map(view) }));

admin.get('/keys/:id', async (c) => {
  const record = await existing(c.env, c.req.param('id'));
  const usage = await limiterOf(c.env, record.id).usage(configOf(record));
  return c.json({ ...view(record), usage });
});

admin.patch('/keys/:id', async (c) => {
  const record = await existing(c.env, c.req.param('id'));
  const body = requireObject(await readJsonBody(c.req.raw, ADMIN_BODY_BYTES));
  rejectUnknown(body, new Set(['name', 'limits', 'disabled']));
  const updated: KeyRecord = {
    ...record,
    name: body.name === undefined ? record.name : parseName(body.name),
    limits: { ...record.limits, ...parseLimits(body.limits) },
    disabled: optionalBoolean(body, 'disabled', record.disabled),
  };
  await store(c.env, updated);
  return c.json(view(updated));
});

admin.delete('/keys/:id', async (c) => {
  const record = await existing(c.env, c.req.param('id'));
  const revoked = { ...record, disabled: true };
  await store(c.env, revoked);
  return c.json(view(revoked));
});
