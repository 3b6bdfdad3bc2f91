// Google ID tokens for Cloud Run's invoker IAM, minted from the service-account key: a JWT
// signed with the key (RS256) is exchanged at the key's token_uri for an ID token whose audience
// is the GPU function's URL. Tokens live an hour; each isolate keeps one per audience and
// refreshes it before it expires, and concurrent requests share one exchange.

import { upstreamFailure } from '../completions/upstream-error.ts';
import type { ServiceAccountKey } from './service-account.ts';

/** Lifetime asked for in the assertion (Google's maximum). */
const ASSERTION_LIFETIME_S = 3600;
/** Refresh this long before expiry, or after three quarters of a short-lived token's life. */
const REFRESH_MARGIN_S = 300;
/** When a token's expiry cannot be read from it. */
const ASSUMED_LIFETIME_S = 1800;
const EXCHANGE_TIMEOUT_MS = 10_000;

interface CachedToken {
  token: string;
  refreshAtMs: number;
}

const tokens = new Map<string, CachedToken>();
const pending = new Map<string, Promise<string>>();
const signingKeys = new Map<string, Promise<CryptoKey>>();

const encoder = new TextEncoder();

function base64url(bytes: Uint8Array | string): string {
  const raw = typeof bytes === 'string' ? encoder.encode(bytes) : bytes;
  let binary = '';
  for (const b of raw) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function signingKey(pem: string): Promise<CryptoKey> {
  let key = signingKeys.get(pem);
  if (!key) {
    const body = pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, '').replace(/\s+/g, '');
    const der = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
    key = crypto.subtle.importKey('pkcs8', der, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, [
      'sign',
    ]);
    key.catch(() => signingKeys.delete(pem));
    signingKeys.set(pem, key);
  }
  return key;
}

/** The signed assertion that asks the token endpoint for an ID token for `audience`. */
export async function assertionFor(key: ServiceAccountKey, audience: string, nowMs: number): Promise<string> {
  const iat = Math.floor(nowMs / 1000);
  const header = base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: key.privateKeyId }));
  const claims = base64url(
    JSON.stringify({
      iss: key.clientEmail,
      sub: key.clientEmail,
      aud: key.tokenUri,
      target_audience: audience,
      iat,
      exp: iat + ASSERTION_LIFETIME_S,
    }),
  );
  const input = `${header}.${claims}`;
  const signature = await crypto.subtle.sign(
    'RSASSA-PKCS1-v1_5',
    await signingKey(key.privateKey),
    encoder.encode(input),
  );
  return `${input}.${base64url(new Uint8Array(signature))}`;
}

/** When to fetch a new token: from the token's own iat/exp claims when it has them. */
function refreshAt(token: string, nowMs: number): number {
  try {
    const payload = token.split('.')[1] ?? '';
    const claims = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as {
      iat?: unknown;
      exp?: unknown;
    };
    if (typeof claims.exp === 'number') {
      const iat = typeof claims.iat === 'number' ? claims.iat : nowMs / 1000;
      const margin = Math.min(REFRESH_MARGIN_S, (claims.exp - iat) / 4);
      return (claims.exp - margin) * 1000;
    }
  } catch {
    // not a JWT we can read: fall through
  }
  return nowMs + (ASSUMED_LIFETIME_S - REFRESH_MARGIN_S) * 1000;
}

async function exchange(key: ServiceAccountKey, audience: string): Promise<CachedToken> {
  const now = Date.now();
  const assertion = await assertionFor(key, audience, now);
  let res: Response;
  try {
    res = await fetch(key.tokenUri, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion,
      }).toString(),
      signal: AbortSignal.timeout(EXCHANGE_TIMEOUT_MS),
    });
  } catch (err) {
    console.error(`invoker token: cannot reach ${new URL(key.tokenUri).origin}: ${String(err)}`);
    throw upstreamFailure('The model server cannot be reached right now (no credentials).');
  }
  const body = (await res.json().catch(() => null)) as { id_token?: unknown; error?: unknown } | null;
  if (!res.ok || typeof body?.id_token !== 'string' || body.id_token === '') {
    // Google's error codes (invalid_grant, ...) say what is wrong without revealing anything.
    console.error(
      `invoker token: the token endpoint answered ${res.status} (${String(body?.error ?? 'no id_token')})`,
    );
    throw upstreamFailure('The model server cannot be reached right now (no credentials).');
  }
  return { token: body.id_token, refreshAtMs: refreshAt(body.id_token, now) };
}

/** An ID token for `audience` (the GPU function's URL), from the isolate's cache when still fresh. */
export function idTokenFor(key: ServiceAccountKey, audience: string): Promise<string> {
  const cacheKey = `${key.clientEmail}\n${audience}`;
  const cached = tokens.get(cacheKey);
  if (cached && cached.refreshAtMs > Date.now()) return Promise.resolve(cached.token);
  let inflight = pending.get(cacheKey);
  if (!inflight) {
    inflight = exchange(key, audience)
      .then((fresh) => {
        tokens.set(cacheKey, fresh);
        return fresh.token;
      })
      .finally(() => pending.delete(cacheKey));
    pending.set(cacheKey, inflight);
  }
  return inflight;
}

/** Drops a token the GPU function's platform refused, so the next call mints a new one. */
export function forgetIdToken(key: ServiceAccountKey, audience: string): void {
  tokens.delete(`${key.clientEmail}\n${audience}`);
}
