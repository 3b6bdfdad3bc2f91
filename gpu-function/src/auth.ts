// Every request other than /healthz must carry the edge's HMAC signature (shared/src/signing.ts).
// The signature is checked from the headers alone, before any of the body is read, so an unsigned,
// expired, replayed or foreign request is refused with 401 at once and does no work; the body is
// then read within a short deadline and held to the signed digest.
import { readBodyBytes } from '../../shared/src/body.ts';
import { ApiError, unauthorized } from '../../shared/src/errors.ts';
import {
  bodyMatchesSignature,
  type NonceCache,
  type VerifyFailure,
  verifySignature,
} from '../../shared/src/signing.ts';

/** The edge sends at most a few tens of kilobytes from a data centre: this is generous. */
export const BODY_TIMEOUT_MS = 5_000;

const MESSAGES: Record<VerifyFailure, string> = {
  missing: 'Missing request signature.',
  malformed: 'Malformed request signature.',
  expired: 'Request signature expired: its timestamp is outside the allowed window.',
  bad_signature: 'Invalid request signature.',
  replayed: 'Request signature already used (replay).',
  body_mismatch: 'The request body does not match its signed digest.',
};

/** Answers that refuse a request before its body was read also close the connection. */
const CLOSE = { connection: 'close' };

export class AuthError extends ApiError {
  readonly reason: VerifyFailure;
  constructor(reason: VerifyFailure) {
    const base = unauthorized(MESSAGES[reason], `signature_${reason}`);
    super(base.status, base.type, base.message, { code: base.code, headers: CLOSE });
    this.name = 'AuthError';
    this.reason = reason;
  }
}

/** Throws AuthError unless the request's headers carry a valid, fresh, unused signature. */
export async function authenticate(secret: string, nonces: NonceCache, req: Request): Promise<void> {
  const failure = await verifySignature(secret, req.method, req.url, req.headers, nonces);
  if (failure !== null) throw new AuthError(failure);
}

/**
 * Reads the body of an authenticated request: at most `maxBytes`, within BODY_TIMEOUT_MS, and
 * only if it is the body the signature vouches for.
 */
export async function readSignedBody(req: Request, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const body = await readBodyBytes(
    req,
    maxBytes,
    () =>
      new ApiError(413, 'invalid_request_error', `The request body exceeds ${maxBytes} bytes.`, {
        code: 'body_too_large',
        headers: CLOSE,
      }),
    {
      timeoutMs: BODY_TIMEOUT_MS,
      tooSlow: () =>
        new ApiError(
          408,
          'invalid_request_error',
          `The request body did not arrive within ${BODY_TIMEOUT_MS} ms.`,
          {
            code: 'body_timeout',
            headers: CLOSE,
          },
        ),
    },
  );
  if (!(await bodyMatchesSignature(req.headers, body))) throw new AuthError('body_mismatch');
  return body;
}
