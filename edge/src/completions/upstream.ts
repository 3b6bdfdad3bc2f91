// The GPU function, seen from the edge: signed requests, patience while it starts, and a
// watchdog on the stream of frames.

import { ApiError, OVERLOADED_CODE, unavailable } from '../../../shared/src/errors.ts';
import type { GenerateFrame, GenerateRequest } from '../../../shared/src/protocol/generate.ts';
import { readFrames } from '../../../shared/src/protocol/ndjson.ts';
import { signRequest } from '../../../shared/src/signing.ts';
import { forgetIdToken, idTokenFor } from '../invoker/id-token.ts';
import type { ServiceAccountKey } from '../invoker/service-account.ts';
import { upstreamFailure } from './upstream-error.ts';

export interface UpstreamOptions {
  baseUrl: string;
  secret: string;
  /** Cloud Run invoker IAM: requests carry an ID token minted from this key. */
  invoker?: ServiceAccountKey | undefined;
  coldStartTimeoutMs: number;
  idleTimeoutMs: number;
}

const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5_000;
/** Retry-After for our own 503 when the GPU function never said how long it needs. */
const DEFAULT_RETRY_AFTER_S = 10;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

function retryAfterSeconds(res: Response): number | null {
  const value = Number(res.headers.get('retry-after'));
  return Number.isFinite(value) && value >= 0 ? value : null;
}

/** Bytes of a refusal's body read to find its error code; the rest is dropped. */
const REFUSAL_PEEK_BYTES = 4096;

/** The `error.code` of a JSON refusal (from its first bytes), or null; the body is consumed. */
async function refusalCode(res: Response): Promise<string | null> {
  if (!res.body) return null;
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < REFUSAL_PEEK_BYTES) {
      const step = await reader.read();
      if (step.done) break;
      chunks.push(step.value);
      size += step.value.byteLength;
    }
  } catch {
    return null;
  } finally {
    reader.cancel().catch(() => undefined);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  try {
    const code = (JSON.parse(new TextDecoder().decode(bytes)) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? code : null;
  } catch {
    return null;
  }
}

/**
 * The GPU function is up but its queue is full: waiting here would only hold the client while
 * the queue stays full, so the client gets the 503 at once, with the function's Retry-After.
 */
const overloaded = (retryAfterS: number) =>
  new ApiError(
    503,
    'service_unavailable',
    'The model server is overloaded (its queue is full); retry later.',
    {
      code: 'server_is_overloaded',
      headers: { 'retry-after': String(Math.max(1, Math.ceil(retryAfterS))) },
    },
  );

/**
 * Opens the generation stream. While the GPU function is starting (connection refused, or 503)
 * it retries with backoff until the cold-start bound, yielding between attempts so a
 * streaming client can be kept alive; past the bound it throws a 503 with Retry-After. A 503
 * of a full queue (code `overloaded`) is not a start: it is passed on at once.
 */
export async function* openGeneration(
  request: GenerateRequest,
  options: UpstreamOptions,
  signal: AbortSignal,
): AsyncGenerator<'waiting', Response> {
  const url = new URL(`${options.baseUrl}/v1/generate`);
  const body = new Uint8Array(new TextEncoder().encode(JSON.stringify(request)));
  const deadline = Date.now() + options.coldStartTimeoutMs;
  let backoff = FIRST_BACKOFF_MS;
  let retryAfterS = DEFAULT_RETRY_AFTER_S;
  let freshToken = false;

  for (;;) {
    // A fresh signature per attempt: the GPU function refuses a nonce it has seen.
    const headers = {
      'content-type': 'application/json',
      ...(await signRequest(options.secret, 'POST', url.href, body)),
      ...(options.invoker
        ? { authorization: `Bearer ${await idTokenFor(options.invoker, url.origin)}` }
        : {}),
    };
    let res: Response | null = null;
    try {
      res = await fetch(url, { method: 'POST', headers, body, signal });
    } catch (err) {
      if (signal.aborted) throw err;
      // Unreachable: the function is not listening yet (or the network hiccupped). Retry.
    }
    if (res?.ok) return res;
    if (res && (res.status === 401 || res.status === 403) && options.invoker && !freshToken) {
      // The platform may refuse a cached token a little early (clock skew): once, mint anew.
      await res.body?.cancel();
      forgetIdToken(options.invoker, url.origin);
      freshToken = true;
      continue;
    }
    if (res && res.status !== 503) throw await rejection(res);

    let waitMs = backoff;
    backoff = Math.min(2 * backoff, MAX_BACKOFF_MS);
    if (res) {
      const hinted = retryAfterSeconds(res);
      if ((await refusalCode(res)) === OVERLOADED_CODE) throw overloaded(hinted ?? DEFAULT_RETRY_AFTER_S);
      if (hinted !== null) {
        retryAfterS = Math.max(1, hinted);
        waitMs = Math.min(Math.max(hinted * 1000, FIRST_BACKOFF_MS), MAX_BACKOFF_MS);
      }
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw unavailable('The model server is starting up; retry shortly.', retryAfterS);
    }
    yield 'waiting';
    await sleep(Math.min(waitMs, left), signal);
    if (signal.aborted) throw signal.reason;
  }
}

/** A non-retryable answer from the GPU function. Its details go to the log, not to the client. */
async function rejection(res: Response): Promise<ApiError> {
  const detail = (await res.text().catch(() => '')).slice(0, 500);
  console.error(`gpu-function answered ${res.status}: ${detail}`);
  return upstreamFailure(`The model server refused the request (HTTP ${res.status}).`);
}

const FINISH_REASONS = new Set(['length', 'stop', 'eos', 'error', 'cancelled']);

function isLogprob(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const l = v as Record<string, unknown>;
  return (
    typeof l.logprob === 'number' &&
    Array.isArray(l.top) &&
    l.top.every((p) => Array.isArray(p) && typeof p[0] === 'number' && typeof p[1] === 'number')
  );
}

/** The shape the edge relies on; anything else from the GPU function is a fault, not a crash. */
function isFrame(v: unknown): v is GenerateFrame {
  if (typeof v !== 'object' || v === null) return false;
  const f = v as Record<string, unknown>;
  if (f.type === 'heartbeat') return true;
  if (f.type === 'tokens') {
    return (
      Array.isArray(f.ids) &&
      f.ids.every((id) => typeof id === 'number' && Number.isInteger(id) && id >= 0) &&
      (f.logprobs === undefined || (Array.isArray(f.logprobs) && f.logprobs.every(isLogprob)))
    );
  }
  if (f.type === 'prompt') {
    return (
      typeof f.prompt === 'number' &&
      Array.isArray(f.logprobs) &&
      f.logprobs.every((l) => l === null || isLogprob(l))
    );
  }
  return f.type === 'done' && typeof f.finish_reason === 'string' && FINISH_REASONS.has(f.finish_reason);
}

/**
 * The frames of an open generation. If nothing (not even a heartbeat) arrives for the idle
 * timeout, the request is aborted and a 502 is thrown.
 */
export async function* generationFrames(
  res: Response,
  idleTimeoutMs: number,
  abort: AbortController,
): AsyncGenerator<GenerateFrame> {
  if (!res.body) throw upstreamFailure('The model server sent an empty response.');
  let idle = false;
  let timer = setTimeout(onIdle, idleTimeoutMs);
  function onIdle() {
    idle = true;
    abort.abort();
  }
  try {
    for await (const frame of readFrames<unknown>(res.body)) {
      clearTimeout(timer);
      if (!isFrame(frame)) throw upstreamFailure('The model server sent a malformed frame.');
      yield frame;
      timer = setTimeout(onIdle, idleTimeoutMs);
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (idle) throw upstreamFailure('The model server stopped responding.', 'upstream_timeout');
    if (abort.signal.aborted) throw err;
    throw upstreamFailure('The connection to the model server broke during generation.');
  } finally {
    clearTimeout(timer);
  }
}
