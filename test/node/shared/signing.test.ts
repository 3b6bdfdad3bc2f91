import { describe, expect, it } from 'vitest';
import { NonceCache, SIGNATURE_HEADERS, signRequest, verifyRequest } from '../../../shared/src/signing.ts';

const secret = 'unit-test-secret';
const body = new TextEncoder().encode('{"prompt_ids":[5,6,7]}');

async function verify(
  h: Record<string, string>,
  opts: { body?: Uint8Array<ArrayBuffer>; now?: number; nonces?: NonceCache; path?: string } = {},
) {
  return verifyRequest(
    secret,
    'POST',
    opts.path ?? '/v1/generate',
    new Headers(h),
    opts.body ?? body,
    opts.nonces ?? new NonceCache(),
    opts.now ?? Date.now(),
  );
}

describe('request signing', () => {
  it('accepts a fresh signed request once and rejects its replay', async () => {
    const headers = await signRequest(secret, 'POST', '/v1/generate', body);
    const nonces = new NonceCache();
    expect(await verify(headers, { nonces })).toBeNull();
    expect(await verify(headers, { nonces })).toBe('replayed');
  });

  it('rejects missing, malformed, expired and tampered signatures', async () => {
    const headers = await signRequest(secret, 'POST', '/v1/generate', body);
    expect(await verify({})).toBe('missing');
    expect(await verify({ ...headers, [SIGNATURE_HEADERS.signature]: 'zz' })).toBe('malformed');
    expect(await verify(headers, { now: Date.now() + 61_000 })).toBe('expired');
    expect(await verify(headers, { now: Date.now() - 61_000 })).toBe('expired');
    expect(await verify(headers, { body: new TextEncoder().encode('{"prompt_ids":[5,6,8]}') })).toBe(
      'bad_signature',
    );
    expect(await verify(headers, { path: '/v1/other' })).toBe('bad_signature');
    const wrongKey = await signRequest('another-secret', 'POST', '/v1/generate', body);
    expect(await verify(wrongKey)).toBe('bad_signature');
  });

  it('forgets nonces after the window', () => {
    const nonces = new NonceCache(1000);
    expect(nonces.add('a', 0)).toBe(true);
    expect(nonces.add('a', 500)).toBe(false);
    expect(nonces.add('b', 2000)).toBe(true);
    expect(nonces.add('a', 2100)).toBe(true);
  });
});
