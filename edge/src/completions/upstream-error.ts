import { ApiError } from '../../../shared/src/errors.ts';

/** A failure of the GPU function (or of reaching it), as the client sees it: 502, no details. */
export const upstreamFailure = (message: string, code = 'upstream_error') =>
  new ApiError(502, 'server_error', message, { code });
