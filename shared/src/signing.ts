// HMAC-SHA256 request signing between the edge and the GPU function (Web Crypto: runs in
// Workers and Node alike).
//
// Signed string:  METHOD \n PATH \n TIMESTAMP \n NONCE \n hex(SHA-256(body))
// Headers:        x-signature-timestamp (unix seconds), x-signature-nonce (random, unique per
//                 request), x-signature (hex HMAC). The verifier rejects timestamps outside
//                 ±SIGNATURE_WINDOW_S and nonces it has already seen within the window.

export const SIGNATURE_WINDOW_S = 60;
export const SIGNATURE_HEADERS = {
  timestamp: 'x-signature-timestamp',
  nonce: 'x-signature-nonce',
  signature: 'x-signature',
} as const;

const encoder = new TextEncoder();

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

async function canonical(
  method: string,
  path: string,
  timestamp: string,
  nonce: string,
  body: Uint8Array<ArrayBuffer>,
) {
  const digest = toHex(await crypto.subtle.digest('SHA-256', body));
  return encoder.encode(`${method.toUpperCase()}\n${path}\n${timestamp}\n${nonce}\n${digest}`);
}

function randomNonce(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return toHex(b.buffer);
}

/** Headers to add to a request from the edge. `path` includes the query string, if any. */
export async function signRequest(
  secret: string,
  method: string,
  path: string,
  body: Uint8Array<ArrayBuffer>,
  nowMs: number = Date.now(),
): Promise<Record<string, string>> {
  const timestamp = String(Math.floor(nowMs / 1000));
  const nonce = randomNonce();
  const mac = await crypto.subtle.sign(
    'HMAC',
    await hmacKey(secret),
    await canonical(method, path, timestamp, nonce, body),
  );
  return {
    [SIGNATURE_HEADERS.timestamp]: timestamp,
    [SIGNATURE_HEADERS.nonce]: nonce,
    [SIGNATURE_HEADERS.signature]: toHex(mac),
  };
}

export type VerifyFailure = 'missing' | 'malformed' | 'expired' | 'bad_signature' | 'replayed';

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

/** Verifies a signed request; resolves to null when valid, else the reason. Constant-time MAC check. */
export async function verifyRequest(
  secret: string,
  method: string,
  path: string,
  headers: { get(name: string): string | null },
  body: Uint8Array<ArrayBuffer>,
  nonces: NonceCache,
  nowMs: number = Date.now(),
): Promise<VerifyFailure | null> {
  const timestamp = headers.get(SIGNATURE_HEADERS.timestamp);
  const nonce = headers.get(SIGNATURE_HEADERS.nonce);
  const signature = headers.get(SIGNATURE_HEADERS.signature);
  if (!timestamp || !nonce || !signature) return 'missing';
  if (!/^\d{1,12}$/.test(timestamp) || !/^[0-9a-f]{16,64}$/.test(nonce)) return 'malformed';
  const mac = fromHex(signature);
  if (mac?.length !== 32) return 'malformed';
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > SIGNATURE_WINDOW_S) return 'expired';
  const ok = await crypto.subtle.verify(
    'HMAC',
    await hmacKey(secret),
    mac,
    await canonical(method, path, timestamp, nonce, body),
  );
  if (!ok) return 'bad_signature';
  if (!nonces.add(nonce, nowMs)) return 'replayed';
  return null;
}
