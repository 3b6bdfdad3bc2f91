// Reading a request body with a size cap (and optionally a time limit), shared by the edge and
// the GPU function.

export interface BodyTimeout {
  /** The whole body must arrive within this long; a slow sender is cut off. */
  timeoutMs?: number;
  tooSlow?: () => Error;
}

/**
 * Reads the whole body into one buffer, refusing (with the error `tooLarge` makes) as soon as
 * the declared or received size passes `maxBytes`, so an oversized body is never buffered, and
 * (with `timeoutMs`) giving up on a body that trickles in.
 */
export async function readBodyBytes(
  request: Request,
  maxBytes: number,
  tooLarge: () => Error,
  limits: BodyTimeout = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const declared = Number(request.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired =
    limits.timeoutMs === undefined
      ? null
      : new Promise<'expired'>((resolve) => {
          timer = setTimeout(() => resolve('expired'), limits.timeoutMs);
        });
  try {
    for (;;) {
      const step = expired ? await Promise.race([reader.read(), expired]) : await reader.read();
      if (step === 'expired') {
        await reader.cancel().catch(() => undefined);
        throw (limits.tooSlow ?? (() => new Error('the request body did not arrive in time')))();
      }
      const { value, done } = step;
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(value);
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
