// One ranged GET streamed into a file at its offset. Memory stays bounded (a small write
// buffer per connection), a connection that stops delivering bytes is aborted after the stall
// timeout, and `If-Match` makes S3, R2 and MinIO refuse (412) when the object was replaced.

import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { isPermanentS3Error } from './s3-client.ts';

/** Bytes gathered before one positional write (writev: no copy). */
const WRITE_BUFFER = 1 << 20;

export class StallError extends Error {
  override name = 'StallError';
}

export class RangeMismatchError extends Error {
  override name = 'RangeMismatchError';
}

export interface RangeRequest {
  client: S3Client;
  bucket: string;
  key: string;
  etag: string;
  /** Whole object when start is 0 and end is the object size (no Range header). */
  objectSize: number;
  start: number;
  /** Exclusive. */
  end: number;
  file: FileHandle;
  stallTimeoutMs: number;
  signal: AbortSignal;
  onBytes: (n: number) => void;
}

/** Fetches [start, end) once; throws on any failure (the caller retries). */
export async function fetchRangeOnce(r: RangeRequest): Promise<void> {
  const stall = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(
      () => stall.abort(new StallError(`no bytes for ${r.stallTimeoutMs} ms from s3://${r.bucket}/${r.key}`)),
      r.stallTimeoutMs,
    );
  };
  const signal = AbortSignal.any([stall.signal, r.signal]);
  const whole = r.start === 0 && r.end === r.objectSize;
  const expected = r.end - r.start;
  arm();
  try {
    const res = await r.client.send(
      new GetObjectCommand({
        Bucket: r.bucket,
        Key: r.key,
        IfMatch: r.etag,
        // Never 'bytes=0-0' or suffix ranges: some S3-compatible servers answer them wrongly.
        ...(whole ? {} : { Range: `bytes=${r.start}-${r.end - 1}` }),
      }),
      { abortSignal: signal },
    );
    if (res.ContentLength !== undefined && res.ContentLength !== expected) {
      throw new RangeMismatchError(
        `s3://${r.bucket}/${r.key}: asked for ${expected} bytes at ${r.start}, the server sent ${res.ContentLength}`,
      );
    }
    const body = res.Body as Readable | undefined;
    if (!body) throw new RangeMismatchError(`s3://${r.bucket}/${r.key}: empty response body`);
    signal.addEventListener('abort', () => body.destroy(signal.reason as Error), { once: true });
    let position = r.start;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const { bytesWritten } = await r.file.writev(pending, position);
      if (bytesWritten !== pendingBytes) throw new Error(`short write to the cache at ${position}`);
      position += pendingBytes;
      r.onBytes(pendingBytes);
      pending = [];
      pendingBytes = 0;
    };
    for await (const chunk of body) {
      arm();
      const buf = chunk as Buffer;
      if (position - r.start + pendingBytes + buf.length > expected) {
        throw new RangeMismatchError(
          `s3://${r.bucket}/${r.key}: the server sent more than ${expected} bytes`,
        );
      }
      pending.push(buf);
      pendingBytes += buf.length;
      if (pendingBytes >= WRITE_BUFFER) await flush();
    }
    await flush();
    if (position !== r.end) {
      throw new RangeMismatchError(
        `s3://${r.bucket}/${r.key}: connection ended after ${position - r.start} of ${expected} bytes`,
      );
    }
  } catch (err) {
    // Report the stall rather than the generic abort it caused.
    if (stall.signal.aborted && !r.signal.aborted) throw stall.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

export interface RetryOptions {
  attempts: number;
  signal: AbortSignal;
  onRetry: (attempt: number, err: unknown, delayMs: number) => void;
}

/** Retries transient failures (network errors, stalls, 5xx) with exponential backoff. */
export async function withRetries<T>(fn: () => Promise<T>, o: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (o.signal.aborted || isPermanentS3Error(err) || attempt >= o.attempts) throw err;
      const delayMs = Math.min(8000, 250 * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5);
      o.onRetry(attempt, err, delayMs);
      await sleep(delayMs, undefined, { signal: o.signal });
    }
  }
}
