import { ApiError, unauthorized } from '../../../shared/src/errors.ts';
import type { Refusal } from './types.ts';

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
  switch (refusal) {
    case 'request_too_large':
      return new ApiError(
        429,
        'rate_limit_error',
        `This request needs ${detail.tokens} tokens (prompt + max_tokens) but the key allows ${detail.limit} tokens per minute; lower max_tokens or shorten the prompt.`,
        { code: 'request_too_large', headers: all },
      );
    case 'concurrent_requests':
      return new ApiError(
        429,
        'rate_limit_error',
        `Too many requests in flight for this key (at most ${detail.concurrent}); wait for one to finish.`,
        { code: 'rate_limit_exceeded', headers: all },
      );
    case 'requests_per_minute':
      return new ApiError(429, 'rate_limit_error', 'Rate limit reached: requests per minute.', {
        code: 'rate_limit_exceeded',
        headers: all,
      });
    case 'tokens_per_minute':
      return new ApiError(
        429,
        'rate_limit_error',
        `Rate limit reached: tokens per minute (this request reserves ${detail.tokens}: prompt + max_tokens).`,
        { code: 'rate_limit_exceeded', headers: all },
      );
    case 'tokens_per_day':
      return new ApiError(429, 'insufficient_quota', 'Daily token quota exhausted for this key.', {
        code: 'insufficient_quota',
        headers: all,
      });
    case 'tokens_per_month':
      return new ApiError(429, 'insufficient_quota', 'Monthly token quota exhausted for this key.', {
        code: 'insufficient_quota',
        headers: all,
      });
  }
}
