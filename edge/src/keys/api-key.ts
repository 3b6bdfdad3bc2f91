// API keys: random secrets shown once; only their SHA-256 hashes are stored.

const KEY_PREFIX = 'sk-jslm-';
/**
 * Every key there can be: made ones (43 base64url characters) and chosen ones (32 to 128). A
 * bearer token of any other shape is refused before it is hashed or looked up.
 */
export const API_KEY_FORMAT = /^sk-jslm-[A-Za-z0-9_-]{32,128}$/;

function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function hex(bytes: ArrayBuffer | Uint8Array): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A new key with 256 bits of randomness. */
export function newApiKey(): string {
  return KEY_PREFIX + base64url(crypto.getRandomValues(new Uint8Array(32)));
}

export function newKeyId(): string {
  return `key_${hex(crypto.getRandomValues(new Uint8Array(8)))}`;
}

/** What the admin API shows instead of the key: enough to recognise it, useless to attack it. */
export function keyHint(key: string): string {
  return `${KEY_PREFIX}...${key.slice(-4)}`;
}

export function plausibleApiKey(key: string): boolean {
  return API_KEY_FORMAT.test(key);
}

export async function sha256Hex(text: string): Promise<string> {
  return hex(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
}

/** Constant-time equality of two strings of public length (e.g. two hex digests). */
export function equalConstantTime(a: string, b: string): boolean {
  const encoder = new TextEncoder();
  const ea = encoder.encode(a);
  const eb = encoder.encode(b);
  return ea.byteLength === eb.byteLength && crypto.subtle.timingSafeEqual(ea, eb);
}

/**
 * Compares two secrets in constant time. Both sides are hashed first so that the comparison
 * always runs over 32 bytes, whatever the lengths.
 */
export async function secretsEqual(a: string, b: string): Promise<boolean> {
  const encoder = new TextEncoder();
  const [ha, hb] = await Promise.all([
    crypto.subtle.digest('SHA-256', encoder.encode(a)),
    crypto.subtle.digest('SHA-256', encoder.encode(b)),
  ]);
  return crypto.subtle.timingSafeEqual(ha, hb);
}
