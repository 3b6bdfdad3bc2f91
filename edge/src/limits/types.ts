// Shapes exchanged between the worker and the KeyLimiter Durable Object.

export interface KeyLimits {
  requests_per_minute: number;
  /** Prompt + completion tokens per minute. */
  tokens_per_minute: number;
  /** Per UTC day. */
  tokens_per_day: number;
  /** Per UTC calendar month. */
  tokens_per_month: number;
  /** Completions in flight at once (records made before this limit lack it: the default applies). */
  concurrent_requests: number;
}

/** What the limiter enforces for one key. */
export interface KeyConfig {
  limits: KeyLimits;
  disabled: boolean;
}

/** The per-minute windows as the x-ratelimit-* headers report them. */
export interface RateState {
  limitRequests: number;
  remainingRequests: number;
  /** Until the request window is empty again. */
  resetRequestsMs: number;
  limitTokens: number;
  remainingTokens: number;
  resetTokensMs: number;
}

export type Refusal =
  | 'disabled'
  | 'requests_per_minute'
  | 'tokens_per_minute'
  | 'request_too_large'
  | 'concurrent_requests'
  | 'tokens_per_day'
  | 'tokens_per_month';

export type ReserveResult =
  | { ok: true; reservationId: number; state: RateState }
  | { ok: false; refusal: Refusal; retryAfterMs: number | null; state: RateState };

/** The answer to taking tokens for an admitted request (the reservation id is the admission's). */
export type TakeResult =
  | { ok: true; state: RateState }
  | { ok: false; refusal: Refusal; retryAfterMs: number | null; state: RateState };

/** Token usage of the current periods, for the admin API. */
export interface UsageReport {
  state: RateState;
  tokens_today: number;
  tokens_this_month: number;
  open_reservations: number;
}

export const LIMIT_NAMES = [
  'requests_per_minute',
  'tokens_per_minute',
  'tokens_per_day',
  'tokens_per_month',
  'concurrent_requests',
] as const satisfies readonly (keyof KeyLimits)[];
