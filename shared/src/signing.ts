// HMAC-SHA256 request signing between the edge and the GPU function (Web Crypto: runs in
// Workers and Node alike).
//
// Signed string:  jslm-v2 \n METHOD \n HOST \n PATH \n TIMESTAMP \n NONCE \n CONTENT-SHA256
// Headers:        x-signature-timestamp (unix seconds), x-signature-nonce (random, unique per
//                 request), x-content-sha256 (hex SHA-256 of the body), x-signature (hex HMAC).
//
// HOST is the audience: a request signed for one GPU function cannot be replayed against another
// that shares the secret. The MAC covers the body's digest header rather than the body, so the
// verifier checks the signature from the headers alone, before it reads a byte of the body, and
// then holds the body to that digest. The verifier rejects timestamps outside
// ±SIGNATURE_WINDOW_S and nonces it has already seen within the window.

export const SIGNATURE_WINDOW_S = 60;
/** Shorter secrets are refused on both sides: an HMAC key should carry at least 256 bits. */
export const MIN_SECRET_BYTES = 32;
export const SIGNATURE_HEADERS = {
  timestamp: 'x-signature-timestamp',
  nonce: 'x-signature-nonce',
  contentSha256: 'x-content-sha256',
  signature: 'x-signature',
} as const;

const encoder = new TextEncoder();

/** Why a secret cannot be used, or null when it can. */
export function secretProblem(secret: string | undefined): string | null {
  if (!secret) return 'is not set';
  const bytes = encoder.encode(secret).byteLength;
  if (bytes < MIN_SECRET_BYTES) {
    return `is ${bytes} bytes; it must be at least ${MIN_SECRET_BYTES} (e.g. openssl rand -base64 48)`;
  }
  return null;
}

function requireSecret(secret: string): void {
  const problem = secretProblem(secret);
  if (problem) throw new Error(`the signing secret ${problem}`);
}

function toHex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> | null {
  if (!/^(?:[0-9a-f]{2})+$/.test(hex)) return null;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const keyCache = new Map<string, Promise<CryptoKey>>();
function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keyCache.get(secret);
  if (!key) {
    key = crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
      'verify',
    ]);
    keyCache.set(secret, key);
  }
  return key;
}

export async function sha256Hex(body: Uint8Array<ArrayBuffer>): Promise<string> {
  return toHex(await crypto.subtle.digest('SHA-256', body));
}

interface Signed {
  method: string;
  host: string;
  path: string;
  timestamp: string;
  nonce: string;
  contentSha256: string;
}

const canonical = (s: Signed) =>
  encoder.encode(
    [
      'jslm-v2',
      s.method.toUpperCase(),
      s.host.toLowerCase(),
      s.path,
      s.timestamp,
      s.nonce,
      s.contentSha256,
    ].join('\n'),
  );

function randomNonce(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return toHex(b.buffer);
}

/** Headers to add to a request from the edge to `url` (absolute: its host is the audience). */
export async function signRequest(
  secret: string,
  method: string,
  url: string,
  body: Uint8Array<ArrayBuffer>,
  nowMs: number = Date.now(),
): Promise<Record<string, string>> {
  requireSecret(secret);
  const target = new URL(url);
  const signed: Signed = {
    method,
    host: target.host,
    path: target.pathname + target.search,
    timestamp: String(Math.floor(nowMs / 1000)),
    nonce: randomNonce(),
    contentSha256: await sha256Hex(body),
  };
  const mac = await crypto.subtle.sign('HMAC', await hmacKey(secret), canonical(signed));
  return {
    [SIGNATURE_HEADERS.timestamp]: signed.timestamp,
    [SIGNATURE_HEADERS.nonce]: signed.nonce,
    [SIGNATURE_HEADERS.contentSha256]: signed.contentSha256,
    [SIGNATURE_HEADERS.signature]: toHex(mac),
  };
}

export type VerifyFailure =
  | 'missing'
  | 'malformed'
  | 'expired'
  | 'bad_signature'
  | 'replayed'
  | 'body_mismatch';

/** Remembers nonces for the signature window so a captured request cannot be replayed. */
export class NonceCache {
  private readonly seen = new Map<string, number>();
  private readonly windowMs: number;
  constructor(windowMs = 2 * SIGNATURE_WINDOW_S * 1000) {
    this.windowMs = windowMs;
  }

  /** Records the nonce; returns false when it was already seen. */
  add(nonce: string, nowMs: number): boolean {
    this.evict(nowMs);
    if (this.seen.has(nonce)) return false;
    this.seen.set(nonce, nowMs);
    return true;
  }

  private evict(nowMs: number): void {
    for (const [n, t] of this.seen) {
      if (nowMs - t <= this.windowMs) break; // insertion order = time order
      this.seen.delete(n);
    }
  }
}

type HeaderSource = { get(name: string): string | null };

/**
 * Checks a request's signature from its headers alone (no body needed); resolves to null when
 * valid, else the reason. `url` is the request as the server received it: its host comes from
 * the Host header. Constant-time MAC check; the nonce is recorded only for a valid MAC.
 */
export async function verifySignature(
  secret: string,
  method: string,
  url: string,
  headers: HeaderSource,
  nonces: NonceCache,
  nowMs: number = Date.now(),
): Promise<VerifyFailure | null> {
  requireSecret(secret);
  const timestamp = headers.get(SIGNATURE_HEADERS.timestamp);
  const nonce = headers.get(SIGNATURE_HEADERS.nonce);
  const contentSha256 = headers.get(SIGNATURE_HEADERS.contentSha256);
  const signature = headers.get(SIGNATURE_HEADERS.signature);
  if (!timestamp || !nonce || !contentSha256 || !signature) return 'missing';
  if (!/^\d{1,12}$/.test(timestamp) || !/^[0-9a-f]{16,64}$/.test(nonce)) return 'malformed';
  if (!/^[0-9a-f]{64}$/.test(contentSha256)) return 'malformed';
  const mac = fromHex(signature);
  if (mac?.length !== 32) return 'malformed';
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > SIGNATURE_WINDOW_S) return 'expired';
  const target = new URL(url);
  const signed: Signed = {
    method,
    host: target.host,
    path: target.pathname + target.search,
    timestamp,
    nonce,
    contentSha256,
  };
  const ok = await crypto.subtle.verify('HMAC', await hmacKey(secret), mac, canonical(signed));
  if (!ok) return 'bad_signature';
  if (!nonces.add(nonce, nowMs)) return 'replayed';
  return null;
}

/** Whether the body is the one the (already verified) signature vouches for. */
export async function bodyMatchesSignature(
  headers: HeaderSource,
  body: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  const expected = fromHex(headers.get(SIGNATURE_HEADERS.contentSha256) ?? '');
  if (expected?.length !== 32) return false;
  const actual = new Uint8Array(await crypto.subtle.digest('SHA-256', body));
  let diff = 0;
  for (let i = 0; i < 32; i++) diff |= actual[i]! ^ expected[i]!;
  return diff === 0;
}

/** Both checks at once, for callers that already hold the body (test stand-ins). */
export async function verifyRequest(
  secret: string,
  method: string,
  url: string,
  headers: HeaderSource,
  body: Uint8Array<ArrayBuffer>,
  nonces: NonceCache,
  nowMs: number = Date.now(),
): Promise<VerifyFailure | null> {
  const failure = await verifySignature(secret, method, url, headers, nonces, nowMs);
  if (failure) return failure;
  return (await bodyMatchesSignature(headers, body)) ? null : 'body_mismatch';
}
