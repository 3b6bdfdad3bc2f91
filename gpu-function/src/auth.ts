// Every /v1/generate request must carry the edge's HMAC signature (shared/src/signing.ts). The
// signature covers the raw body bytes, so it is checked before the body is parsed: an unsigned,
// expired, replayed or tampered request is refused with 401 and does no work.
import { readBodyBytes } from '../../shared/src/body.ts';
import { ApiError, unauthorized } from '../../shared/src/errors.ts';
import { type NonceCache, type VerifyFailure, verifyRequest } from '../../shared/src/signing.ts';

const MESSAGES: Record<VerifyFailure, string> = {
  missing: 'Missing request signature.',
  malformed: 'Malformed request signature.',
  expired: 'Request signature expired: its timestamp is outside the allowed window.',
  bad_signature: 'Invalid request signature.',
  replayed: 'Request signature already used (replay).',
};

export class AuthError extends ApiError {
  readonly reason: VerifyFailure;
  constructor(reason: VerifyFailure) {
    const base = unauthorized(MESSAGES[reason], `signature_${reason}`);
    super(base.status, base.type, base.message, { code: base.code });
    this.name = 'AuthError';
    this.reason = reason;
  }
}

/** Reads at most `maxBytes` of the body; larger bodies are refused without reading them all. */
export async function readBody(req: Request, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = () =>
    new ApiError(413, 'invalid_request_error', `The request body exceeds ${maxBytes} bytes.`, {
      code: 'body_too_large',
    });
  return readBodyBytes(req, maxBytes, tooLarge);
}

/** Throws AuthError unless the request is signed with `secret`, fresh and not seen before. */
export async function authenticate(
  secret: string,
  nonces: NonceCache,
  req: Request,
  body: Uint8Array<ArrayBuffer>,
): Promise<void> {
  const url = new URL(req.url);
  const failure = await verifyRequest(
    secret,
    req.method,
    url.pathname + url.search,
    req.headers,
    body,
    nonces,
  );
  if (failure !== null) throw new AuthError(failure);
}
