// /admin/keys: create, list, show, change and revoke API keys. Behind ADMIN_TOKEN.

import { Hono } from 'hono';
import { createMiddleware } from 'hono/factory';
import { ApiError, badRequest, notFound, unauthorized } from '../../../shared/src/errors.ts';
import type { AppEnv } from '../app-env.ts';
import { optionalBoolean, rejectUnknown, requireObject, wellFormedString } from '../http/fields.ts';
import { readJsonBody } from '../http/json-body.ts';
import { changeKey, createKey, keyIdFor, readKey } from '../keys/admin-ops.ts';
import { API_KEY_FORMAT, keyHint, newApiKey, secretsEqual, sha256Hex } from '../keys/api-key.ts';
import type { StoredKey } from '../keys/record-table.ts';
import { type KeyRecord, listKeys } from '../keys/store.ts';
import { configOf, limiterOf } from '../limits/client.ts';
import { parseLimits } from '../limits/parse.ts';
import { edgeSettings } from '../settings.ts';

const MAX_NAME_LENGTH = 100;
const ADMIN_BODY_BYTES = 16 * 1024;
const KEY_ID = /^key_[0-9a-f]{16}$/;

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

/** A key as the admin API shows it: everything but the hash, with the version for If-Match. */
const view = ({ record: { hash: _, ...rest }, version }: StoredKey) => ({ ...rest, version });

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

/** An id that cannot name a key is answered 404 without asking anything. */
function keyId(id: string): string {
  if (!KEY_ID.test(id)) throw notFound(`No API key with id '${id.slice(0, 40)}'.`);
  return id;
}

/** The version in `If-Match: "3"`, if the client sent one. */
function ifMatch(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(header);
  if (!m) throw badRequest('\'If-Match\' must be a key version, e.g. "3".', 'If-Match');
  return Number(m[1]);
}

const withEtag = (stored: StoredKey) => ({ etag: `"${stored.version}"` });

export const admin = new Hono<AppEnv>();
admin.use('*', requireAdmin);

admin.post('/keys', async (c) => {
  const body = requireObject(await readJsonBody(c.req.raw, ADMIN_BODY_BYTES));
  rejectUnknown(body, new Set(['name', 'limits', 'key']));
  if (body.name === undefined) throw badRequest("Missing required parameter: 'name'.", 'name');
  const key = body.key === undefined ? newApiKey() : parseChosenKey(body.key);
  const hash = await sha256Hex(key);
  const record: KeyRecord = {
    id: await keyIdFor(hash),
    name: parseName(body.name),
    hash,
    hint: keyHint(key),
    limits: { ...edgeSettings(c.env).defaultLimits, ...parseLimits(body.limits) },
    created: Math.floor(Date.now() / 1000),
    disabled: false,
  };
  const result = await createKey(c.env, record);
  if (result.outcome === 'conflict') {
    throw new ApiError(409, 'invalid_request_error', 'This key already exists.', {
      param: 'key',
      code: 'key_exists',
    });
  }
  // The only time the key itself leaves the worker. A repeated creation (same key, name and
  // limits) answers 200 with the key as it was made.
  return c.json(
    { ...view(result.stored), key },
    result.outcome === 'created' ? 201 : 200,
    withEtag(result.stored),
  );
});

admin.get('/keys', async (c) => {
  const data = (await listKeys(c.env.API_KEYS)).map(({ version, ...record }) =>
    view({ record, version: version ?? 0 }),
  );
  return c.json({ object: 'list', data });
});

admin.get('/keys/:id', async (c) => {
  const stored = await readKey(c.env, keyId(c.req.param('id')));
  if (!stored) throw notFound(`No API key with id '${c.req.param('id')}'.`);
  const usage = await limiterOf(c.env, stored.record.id).usage(configOf(stored.record));
  return c.json({ ...view(stored), usage }, 200, withEtag(stored));
});

admin.patch('/keys/:id', async (c) => {
  const id = keyId(c.req.param('id'));
  const expected = ifMatch(c.req.header('if-match'));
  const body = requireObject(await readJsonBody(c.req.raw, ADMIN_BODY_BYTES));
  rejectUnknown(body, new Set(['name', 'limits', 'disabled']));
  // Validated once, applied to whatever the current record is when the change lands.
  const name = body.name === undefined ? undefined : parseName(body.name);
  const limits = parseLimits(body.limits);
  const disabled =
    body.disabled === undefined || body.disabled === null
      ? undefined
      : optionalBoolean(body, 'disabled', false);
  const stored = await changeKey(
    c.env,
    id,
    (record) => ({
      ...record,
      name: name ?? record.name,
      limits: { ...record.limits, ...limits },
      disabled: disabled ?? record.disabled,
    }),
    expected,
  );
  return c.json(view(stored), 200, withEtag(stored));
});

admin.delete('/keys/:id', async (c) => {
  const id = keyId(c.req.param('id'));
  const stored = await changeKey(
    c.env,
    id,
    (record) => ({ ...record, disabled: true }),
    ifMatch(c.req.header('if-match')),
  );
  return c.json(view(stored), 200, withEtag(stored));
});
