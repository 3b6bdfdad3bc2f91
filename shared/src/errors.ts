// Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
// Both services throw ApiError at their boundaries; each maps it to an HTTP response.

export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  /** OpenAI's types of a rate limit: which window was full (code `rate_limit_exceeded`). */
  | 'requests'
  | 'tokens'
  | 'insufficient_quota'
  | 'server_error'
  | 'service_unavailable';

export interface ErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string | null };
}

export class ApiError extends Error {
  readonly status: number;
  readonly type: ErrorType;
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    type: ErrorType,
    message: string,
    options: { param?: string | null; code?: string | null; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.type = type;
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.headers = options.headers ?? {};
  }

  toJSON(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  toResponse(extraHeaders: Record<string, string> = {}): Response {
    return Response.json(this.toJSON(), {
      status: this.status,
      headers: { ...this.headers, ...extraHeaders },
    });
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, 'invalid_request_error', message, { param, code });

export const unauthorized = (message: string, code: string | null = 'invalid_api_key') =>
  new ApiError(401, 'authentication_error', message, { code });

export const notFound = (message: string) => new ApiError(404, 'not_found_error', message);

/** The GPU function's code for a 503 of a full queue: not starting, busy (the edge answers at once). */
export const OVERLOADED_CODE = 'overloaded';

export const unavailable = (message: string, retryAfterS: number, code = 'service_unavailable') =>
  new ApiError(503, 'service_unavailable', message, {
    code,
    headers: { 'retry-after': String(Math.max(1, Math.ceil(retryAfterS))) },
  });

/** Maps anything thrown to an ApiError; unknown errors become a 500 without internal details. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  return new ApiError(500, 'server_error', 'Internal server error.', { code: 'internal_error' });
}
