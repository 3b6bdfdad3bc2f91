// Malformed requests of every route's shape, through the worker in workerd with its real KV,
// Durable Objects and the loopback backend: wrong types, huge and deeply nested values, hostile
// unicode, ids out of range, broken JSON and UTF-8, odd headers and methods. Whatever comes in,
// the answer is never a 5xx (and never a crash or a hang). The generator is seeded: a failure
// names the case, and the same run reproduces it.
import { describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, call, createKey, MODEL_ID, ORIGIN, TOKENIZER_READY } from './helpers.ts';

/** Requests per run (the issue asks for at least a thousand). */
const CASES = 1200;

/** mulberry32: small, fast, and the same sequence for the same seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = ReturnType<typeof prng>;
const pick = <T>(r: Rand, items: readonly T[]): T => items[Math.floor(r() * items.length)]!;
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

/** Text a client might send: plain, Japanese, emoji, control characters, lone surrogates, huge. */
function text(r: Rand): string {
  switch (int(r, 0, 9)) {
    case 0:
      return '';
    case 1:
      return '吾輩は猫である。'.repeat(int(r, 1, 50));
    case 2:
      return '\ud83d\ude00🎉👨‍👩‍👧'.repeat(int(r, 1, 30));
    case 3:
      return `a\ud800b${r() < 0.5 ? '\udc00' : ''}`; // lone surrogates
    case 4:
      return '\u0000\u0001\u001f\u007f\ufeff\u202e\u200d'.repeat(int(r, 1, 20));
    case 5:
      return 'x'.repeat(int(r, 10_000, 60_000)); // large (the test body limit is 64 KiB)
    case 6:
      return 'e\u0301'.repeat(int(r, 1, 200)); // combining marks
    case 7:
      return ' '.repeat(int(r, 1, 5000)); // many <|spmspace|> pieces
    case 8:
      return String.fromCharCode(...Array.from({ length: int(r, 1, 64) }, () => int(r, 0, 0xffff)));
    default:
      return 'hello';
  }
}

/** Any JSON value, some of them absurd. */
function value(r: Rand, depth = 0): unknown {
  switch (int(r, 0, 12)) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return pick(r, [0, -1, 1, 1.5, -0.0, 1e308, -1e308, 2 ** 53, 2 ** 53 + 2, 65535, 65536, 1e-40, 7]);
    case 3:
      return text(r);
    case 4:
      return depth > 3 ? [] : Array.from({ length: int(r, 0, 5) }, () => value(r, depth + 1));
    case 5:
      return depth > 3
        ? {}
        : Object.fromEntries(Array.from({ length: int(r, 0, 4) }, (_, i) => [`k${i}`, value(r, depth + 1)]));
    case 6:
      return nested(int(r, 10, 20_000));
    case 7:
      return Array.from({ length: int(r, 1000, 8000) }, () => int(r, -5, 70_000)); // ids, some out of range
    case 8:
      return { __proto__: 1, constructor: 'x', toString: [] };
    default:
      return int(r, -3, 40);
  }
}

/**
 * Nesting deeper than any sensible parser expects (arrays are 2 bytes a level). A placeholder
 * here, written out as text by `encode`: JSON.stringify itself overflows the stack on it.
 */
function nested(depth: number): string {
  return `@@nest:${depth}@@`;
}

/** A path segment from any text (surrogates dropped), or raw bad percent-escapes. */
const segment = (t: string) =>
  t.length % 3 === 0 ? '%ff%fe%zz' : encodeURIComponent(t.replace(/[\uD800-\uDFFF]/g, ''));

/** Maybe a field, maybe the right one, maybe garbage. */
function field(r: Rand, good: () => unknown): unknown {
  const roll = r();
  if (roll < 0.45) return good();
  if (roll < 0.55) return undefined;
  return value(r);
}

const COMPLETION_FIELDS = [
  'max_tokens',
  'temperature',
  'top_p',
  'top_k',
  'repetition_penalty',
  'stop',
  'seed',
  'stream',
  'stream_options',
  'echo',
  'user',
  'n',
  'best_of',
  'logprobs',
  'suffix',
  'logit_bias',
  'presence_penalty',
  'frequency_penalty',
];

function completionBody(r: Rand): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: field(r, () => MODEL_ID),
    prompt: field(r, () => pick(r, ['こんにちは', [300, 301, 302], [[300, 301]], ['a', 'b']])),
    max_tokens: field(r, () => int(r, 1, 4)),
  };
  for (const name of COMPLETION_FIELDS) if (r() < 0.25) body[name] = value(r);
  if (r() < 0.1) body[`unknown_${int(r, 0, 999)}`] = value(r);
  if (r() < 0.1) body.stream = true;
  return body;
}

interface FuzzCase {
  label: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: BodyInit;
}

/** A JSON body, or (sometimes) one broken on the way: truncated, not UTF-8, not JSON. */
function encode(r: Rand, body: unknown): BodyInit {
  const json = (JSON.stringify(body) ?? 'null').replace(/"@@nest:(\d+)@@"/g, (_, n: string) => {
    const depth = Number(n);
    return `${'['.repeat(depth)}${']'.repeat(depth)}`;
  });
  switch (int(r, 0, 19)) {
    case 0:
      return json.slice(0, int(r, 0, json.length));
    case 1:
      return new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]);
    case 2:
      return `${json},`;
    case 3:
      return `\ufeff${json}`;
    case 4:
      return '';
    default:
      return json;
  }
}

function authHeader(r: Rand, key: string): Record<string, string> {
  switch (int(r, 0, 19)) {
    case 0:
      return {};
    case 1:
      return { authorization: 'Bearer' };
    case 2:
      return { authorization: `Basic ${key}` };
    case 3:
      return { authorization: `Bearer sk-jslm-${'x'.repeat(int(r, 0, 300))}` };
    case 4:
      return { authorization: `Bearer ${key} extra` };
    default:
      return { authorization: `Bearer ${key}` };
  }
}

function makeCase(r: Rand, i: number, key: string, adminKeyId: string): FuzzCase {
  const route = pick(r, [
    'completions',
    'completions',
    'completions',
    'completions',
    'tokenize',
    'tokenize',
    'detokenize',
    'detokenize',
    'models',
    'admin',
    'admin',
    'other',
  ]);
  const json = {
    'content-type': pick(r, ['application/json', 'text/plain', 'application/x-www-form-urlencoded']),
  };
  switch (route) {
    case 'completions':
      return {
        label: `${i} completions`,
        method: r() < 0.95 ? 'POST' : pick(r, ['GET', 'PUT', 'DELETE']),
        path: '/v1/completions',
        headers: { ...authHeader(r, key), ...json },
        body: encode(r, r() < 0.9 ? completionBody(r) : value(r)),
      };
    case 'tokenize':
      return {
        label: `${i} tokenize`,
        method: 'POST',
        path: '/v1/tokenize',
        headers: { ...authHeader(r, key), ...json },
        body: encode(
          r,
          r() < 0.85 ? { prompt: field(r, () => text(r)), model: field(r, () => MODEL_ID) } : value(r),
        ),
      };
    case 'detokenize':
      return {
        label: `${i} detokenize`,
        method: 'POST',
        path: '/v1/detokenize',
        headers: { ...authHeader(r, key), ...json },
        body: encode(
          r,
          r() < 0.85
            ? { tokens: field(r, () => Array.from({ length: int(r, 0, 3000) }, () => int(r, -2, 66_000))) }
            : value(r),
        ),
      };
    case 'models':
      return {
        label: `${i} models`,
        method: r() < 0.9 ? 'GET' : 'POST',
        path: pick(r, [
          '/v1/models',
          `/v1/models/${MODEL_ID}`,
          `/v1/models/${segment(text(r).slice(0, 2000))}`,
        ]),
        headers: authHeader(r, key),
      };
    case 'admin': {
      const id = pick(r, [adminKeyId, 'key_missing', 'key_0000000000000000', segment(text(r).slice(0, 300))]);
      const method = pick(r, ['POST', 'GET', 'PATCH', 'DELETE', 'PUT']);
      const path = method === 'POST' || (method === 'GET' && r() < 0.3) ? '/admin/keys' : `/admin/keys/${id}`;
      const token =
        r() < 0.9
          ? ADMIN_TOKEN
          : text(r)
              .replace(/[^\x20-\x7e]/g, '')
              .slice(0, 200);
      const body =
        method === 'POST' || method === 'PATCH'
          ? encode(
              r,
              r() < 0.8
                ? {
                    name: field(r, () => `fuzz-${i}`),
                    limits: field(r, () => ({ requests_per_minute: int(r, 1, 10) })),
                    ...(r() < 0.2 ? { key: value(r) } : {}),
                    ...(r() < 0.2 ? { disabled: value(r) } : {}),
                  }
                : value(r),
            )
          : undefined;
      return {
        label: `${i} admin ${method}`,
        method,
        path,
        headers: {
          authorization: `Bearer ${token}`,
          ...json,
          ...(r() < 0.1 ? { 'if-match': pick(r, ['"1"', '*', 'garbage', '"99999999999999999999"']) } : {}),
        },
        ...(body === undefined ? {} : { body }),
      };
    }
    default:
      return {
        label: `${i} other`,
        method: pick(r, ['GET', 'POST', 'OPTIONS', 'HEAD']),
        path: pick(r, [
          '/',
          '/v1',
          '/v1/',
          '/v1/chat/completions',
          '/healthz',
          '/admin',
          `/${'a'.repeat(3000)}`,
          '/v1/../admin/keys',
        ]),
        headers: authHeader(r, key),
      };
  }
}

describe.skipIf(!TOKENIZER_READY)('fuzz', () => {
  it(`answers ${CASES} malformed requests of every route's shape without a 5xx`, async () => {
    const r = prng(0x5eed_14);
    // Limits high enough that most requests get past them (429s are fine, just less coverage).
    const huge = {
      requests_per_minute: 1_000_000,
      tokens_per_minute: 1_000_000_000,
      tokens_per_day: 1_000_000_000,
      tokens_per_month: 1_000_000_000,
    };
    const api = await createKey(huge, 'fuzz');
    const target = await createKey(huge, 'fuzz-admin-target');
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    for (let i = 0; i < CASES; i++) {
      const c = makeCase(r, i, api.key, target.id);
      const withBody = c.body !== undefined && c.method !== 'GET' && c.method !== 'HEAD';
      let status: number;
      try {
        const res = await call(
          new Request(`${ORIGIN}${c.path}`, {
            method: c.method,
            headers: c.headers,
            ...(withBody ? { body: c.body } : {}),
          }),
        );
        status = res.status;
        await res.arrayBuffer(); // a stream must end, too
      } catch (err) {
        failures.push(`${c.label} ${c.method} ${c.path.slice(0, 80)}: threw ${String(err).slice(0, 200)}`);
        continue;
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status >= 500) failures.push(`${c.label} ${c.method} ${c.path.slice(0, 80)}: ${status}`);
    }
    expect(failures).toEqual([]);
    const total = [...statuses.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(CASES);
    // The run reached past validation too: some requests were answered, many refused as bad input.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(50);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(200);
    console.log(`fuzz: ${CASES} requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  }, 180_000);
});
