import { describe, expect, it } from 'vitest';
import {
  bodyMatchesSignature,
  NonceCache,
  SIGNATURE_HEADERS,
  signRequest,
  verifyRequest,
  verifySignature,
} from '../../../shared/src/signing.ts';

const secret = 'unit-test-secret-of-thirty-two-bytes';
const URL_A = 'https://gpu-a.example.run.app/v1/generate';
const body = new TextEncoder().encode('{"prompt_ids":[5,6,7]}');

async function verify(
  h: Record<string, string>,
  opts: { body?: Uint8Array<ArrayBuffer>; now?: number; nonces?: NonceCache; url?: string } = {},
) {
  return verifyRequest(
    secret,
    'POST',
    opts.url ?? URL_A,
    new Headers(h),
    opts.body ?? body,
    opts.nonces ?? new NonceCache(),
    opts.now ?? Date.now(),
  );
}

describe('request signing', () => {
  it('accepts a fresh signed request once and rejects its replay', async () => {
    const headers = await signRequest(secret, 'POST', URL_A, body);
    const nonces = new NonceCache();
    expect(await verify(headers, { nonces })).toBeNull();
    expect(await verify(headers, { nonces })).toBe('replayed');
  });

  it('rejects missing, malformed, expired and tampered signatures', async () => {
    const headers = await signRequest(secret, 'POST', URL_A, body);
    expect(await verify({})).toBe('missing');
    expect(await verify({ ...headers, [SIGNATURE_HEADERS.signature]: 'zz' })).toBe('malformed');
    expect(await verify({ ...headers, [SIGNATURE_HEADERS.contentSha256]: 'ab' })).toBe('malformed');
    expect(await verify(headers, { now: Date.now() + 61_000 })).toBe('expired');
    expect(await verify(headers, { now: Date.now() - 61_000 })).toBe('expired');
    expect(await verify(headers, { body: new TextEncoder().encode('{"prompt_ids":[5,6,8]}') })).toBe(
      'body_mismatch',
    );
    expect(await verify(headers, { url: 'https://gpu-a.example.run.app/v1/other' })).toBe('bad_signature');
    const wrongKey = await signRequest('another-secret-of-thirty-two-bytes', 'POST', URL_A, body);
    expect(await verify(wrongKey)).toBe('bad_signature');
  });

  it('binds the audience: a request signed for one host is refused by another', async () => {
    const headers = await signRequest(secret, 'POST', URL_A, body);
    expect(await verify(headers, { url: 'https://gpu-b.example.run.app/v1/generate' })).toBe('bad_signature');
    expect(await verify(headers, { url: 'https://gpu-a.example.run.app:8443/v1/generate' })).toBe(
      'bad_signature',
    );
    // The host is case-insensitive, as DNS names are.
    expect(await verify(headers, { url: 'https://GPU-A.example.run.app/v1/generate' })).toBeNull();
  });

  it('checks the signature from the headers alone, then holds the body to the signed digest', async () => {
    const headers = new Headers(await signRequest(secret, 'POST', URL_A, body));
    // No body is needed for the first check.
    expect(await verifySignature(secret, 'POST', URL_A, headers, new NonceCache())).toBeNull();
    expect(await bodyMatchesSignature(headers, body)).toBe(true);
    expect(await bodyMatchesSignature(headers, new TextEncoder().encode('{}'))).toBe(false);
  });

  it('refuses secrets shorter than 32 bytes on both sides', async () => {
    await expect(signRequest('short', 'POST', URL_A, body)).rejects.toThrow(/at least 32/);
    await expect(
      verifySignature('x'.repeat(31), 'POST', URL_A, new Headers(), new NonceCache()),
    ).rejects.toThrow(/at least 32/);
  });

  it('forgets nonces after the window', () => {
    const nonces = new NonceCache(1000);
    expect(nonces.add('a', 0)).toBe(true);
    expect(nonces.add('a', 500)).toBe(false);
    expect(nonces.add('b', 2000)).toBe(true);
    expect(nonces.add('a', 2100)).toBe(true);
  });
});
