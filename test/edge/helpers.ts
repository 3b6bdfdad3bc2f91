// Helpers for the edge tests: requests to the worker under test, admin calls, SSE parsing.
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { env, exports } from 'cloudflare:workers';
import { expect, inject } from 'vitest';
import worker from '../../edge/src/index.ts';
import type { KeyLimits } from '../../edge/src/limits/types.ts';
import { MODEL_ID } from '../../shared/src/model-facts.ts';

export const ORIGIN = 'http://edge.test';
export const ADMIN_TOKEN = env.ADMIN_TOKEN ?? '';
export const BACKEND_URL = env.GPU_FUNCTION_URL;
export { MODEL_ID };
/** The compiled tokenizer could be built (see node/global-setup.ts); without it, tokenizing tests skip. */
export const TOKENIZER_READY = inject('tokenizerReady');

/** The stand-in token endpoint's control address (see node/token-server.ts). */
export const TOKEN_SERVER_URL = inject('tokenServerUrl');

/** The backend with a scenario prefix (see node/wire-backend.ts). */
export const scenario = (opts: string) => `${BACKEND_URL}/s/${opts}`;

export interface CallOptions {
  /** Another GPU_FUNCTION_URL for this request (a backend scenario, an unreachable port). */
  backend?: string;
  /** Other bindings for this request (settings, a KV namespace wrapped to observe or fail). */
  env?: Partial<Cloudflare.Env>;
}

/** Sends a request to the worker; with overrides, the same worker code gets an adjusted env. */
export async function call(request: Request, options: CallOptions = {}): Promise<Response> {
  if (!options.backend && !options.env) return exports.default.fetch(request);
  const ctx = createExecutionContext();
  const adjusted = {
    ...env,
    ...options.env,
    ...(options.backend ? { GPU_FUNCTION_URL: options.backend } : {}),
  };
  const res = await worker.fetch(request, adjusted, ctx);
  // Streamed bodies settle after they are read: keep waitUntil work alive alongside the body.
  void waitOnExecutionContext(ctx);
  return res;
}

export function admin(
  method: string,
  path: string,
  body?: unknown,
  token = ADMIN_TOKEN,
  options: CallOptions & { headers?: Record<string, string> } = {},
): Promise<Response> {
  return call(
    new Request(`${ORIGIN}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...options.headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
    options,
  );
}

export interface CreatedKey {
  id: string;
  key: string;
}

export async function createKey(limits: Partial<KeyLimits> = {}, name = 'test'): Promise<CreatedKey> {
  const res = await admin('POST', '/keys', { name, limits });
  expect(res.status).toBe(201);
  return (await res.json()) as CreatedKey;
}

export function api(
  key: string,
  path: string,
  body?: unknown,
  options: CallOptions & { method?: string } = {},
): Promise<Response> {
  return call(
    new Request(`${ORIGIN}${path}`, {
      method: options.method ?? (body === undefined ? 'GET' : 'POST'),
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    }),
    options,
  );
}

export const complete = (key: string, body: Record<string, unknown>, options: CallOptions = {}) =>
  api(key, '/v1/completions', { model: MODEL_ID, ...body }, options);

export async function tokenize(key: string, prompt: string): Promise<number[]> {
  const res = await api(key, '/v1/tokenize', { prompt });
  expect(res.status).toBe(200);
  return ((await res.json()) as { tokens: number[] }).tokens;
}

export type SseEvent = { comment: string } | { data: unknown } | { done: true };

/** Reads a whole SSE body into its events (comments, JSON data, the [DONE] marker). */
export async function readSse(res: Response): Promise<SseEvent[]> {
  const text = await res.text();
  const events: SseEvent[] = [];
  for (const block of text.split('\n\n')) {
    if (block === '') continue;
    if (block.startsWith(':')) events.push({ comment: block.slice(1).trim() });
    else if (block === 'data: [DONE]') events.push({ done: true });
    else if (block.startsWith('data: ')) events.push({ data: JSON.parse(block.slice(6)) });
    else throw new Error(`unexpected SSE block ${JSON.stringify(block)}`);
  }
  return events;
}

export interface KeyUsage {
  tokens_today: number;
  tokens_this_month: number;
  open_reservations: number;
  state: { remainingRequests: number; remainingTokens: number };
}

export async function usageOf(id: string): Promise<KeyUsage> {
  const res = await admin('GET', `/keys/${id}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { usage: KeyUsage }).usage;
}

/** Usage once every reservation of the key is settled (settling runs after the response). */
export async function settledUsageOf(id: string): Promise<KeyUsage> {
  let usage = await usageOf(id);
  for (let i = 0; i < 100 && usage.open_reservations > 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
    usage = await usageOf(id);
  }
  expect(usage.open_reservations).toBe(0);
  return usage;
}

export interface BackendLogEntry {
  path: string;
  tag: string | null;
  status: number;
  tokensSent: number;
  outcome: string;
  temperature?: number;
}

export async function backendLog(tag: string): Promise<BackendLogEntry[]> {
  const res = await fetch(`${BACKEND_URL}/log`);
  return ((await res.json()) as BackendLogEntry[]).filter((e) => e.tag === tag);
}

/**
 * The API_KEYS namespace as a data centre with a warm KV cache sees it: a key read once keeps
 * answering that value (KV caches reads for up to a minute), while writes go through.
 */
export function staleKv(real: KVNamespace): KVNamespace {
  const cached = new Map<string, unknown>();
  return new Proxy(real, {
    get(target, prop) {
      if (prop === 'get') {
        return async (key: string, type?: unknown) => {
          const id = `${key}\n${String(type)}`;
          if (!cached.has(id)) cached.set(id, await target.get(key, type as 'text'));
          return cached.get(id);
        };
      }
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** The real namespace, counting reads and failing the writes `failPut` picks. */
export function observedKv(
  real: KVNamespace,
  failPut: (key: string) => boolean = () => false,
): { kv: KVNamespace; reads: string[] } {
  const reads: string[] = [];
  const kv = new Proxy(real, {
    get(target, prop) {
      if (prop === 'get') {
        return (key: string, type?: unknown) => {
          reads.push(key);
          return target.get(key, type as 'text');
        };
      }
      if (prop === 'put') {
        return (key: string, ...rest: unknown[]) => {
          if (failPut(key)) return Promise.reject(new Error(`KV put of ${key} failed (test)`));
          return (target.put as (...a: unknown[]) => Promise<void>)(key, ...rest);
        };
      }
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { kv, reads };
}
