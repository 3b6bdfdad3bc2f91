// A limiter refusal as OpenAI words it: rate limits are type `requests` or `tokens` with code
// `rate_limit_exceeded` (retry after Retry-After), quotas type and code `insufficient_quota`.
// Waiting does not help a spent quota (not for hours) or a request larger than the key's tokens
// per minute (never): those carry `x-should-retry: false`, which the official clients obey.

import { ApiError, type ErrorType, unauthorized } from '../../../shared/src/errors.ts';
import { MODEL_ID } from '../../../shared/src/model-facts.ts';
import type { Refusal } from './types.ts';

const NO_RETRY = { 'x-should-retry': 'false' };

/** The HTTP error for a limiter refusal: 429 for rates and quotas, with Retry-After when it helps. */
export function refusalError(
  refusal: Refusal,
  retryAfterMs: number | null,
  detail: { tokens: number; limit: number; concurrent?: number },
  headers: Record<string, string>,
): ApiError {
  if (refusal === 'disabled') return unauthorized('This API key has been revoked.');
  const retry: Record<string, string> =
    retryAfterMs === null ? {} : { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) };
  const all = { ...headers, ...retry };
  const limited = (type: ErrorType, message: string, extra: Record<string, string> = {}) =>
    new ApiError(429, type, message, { code: 'rate_limit_exceeded', headers: { ...all, ...extra } });
  const quota = (message: string) =>
    new ApiError(429, 'insufficient_quota', message, {
      code: 'insufficient_quota',
      headers: { ...all, ...NO_RETRY },
    });
  switch (refusal) {
    case 'request_too_large':
      return limited(
        'tokens',
        `Request too large for ${MODEL_ID} on tokens per min (TPM): Limit ${detail.limit}, Requested ${detail.tokens} (prompt + max_tokens). Lower max_tokens or shorten the prompt; retrying will not help.`,
        NO_RETRY,
      );
    case 'concurrent_requests':
      return limited(
        'requests',
        `Too many requests in flight for this key (at most ${detail.concurrent}); wait for one to finish.`,
      );
    case 'requests_per_minute':
      return limited('requests', 'Rate limit reached: requests per minute.');
    case 'tokens_per_minute':
      return limited(
        'tokens',
        `Rate limit reached: tokens per minute (this request reserves ${detail.tokens}: prompt + max_tokens).`,
      );
    case 'tokens_per_day':
      return quota('Daily token quota exhausted for this key; it resets at 00:00 UTC (see Retry-After).');
    case 'tokens_per_month':
      return quota(
        'Monthly token quota exhausted for this key; it resets on the 1st at 00:00 UTC (see Retry-After).',
      );
  }
}
