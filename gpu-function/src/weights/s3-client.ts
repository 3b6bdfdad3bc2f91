// One S3 client configuration that works with AWS S3, Cloudflare R2, MinIO and the local test
// servers: path-style addressing, checksums only when an operation requires them (the local
// servers mangle aws-chunked bodies; integrity is checked with the manifest's SHA-256 instead),
// and a keep-alive agent with enough sockets for the concurrent ranged GETs.
import { S3Client, S3ServiceException } from '@aws-sdk/client-s3';

export interface S3Settings {
  endpoint: string | undefined;
  region: string;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  sessionToken: string | undefined;
}

export function createS3Client(s: S3Settings, opts: { maxSockets?: number } = {}): S3Client {
  const maxSockets = Math.max(8, (opts.maxSockets ?? 8) * 2);
  const agent = { keepAlive: true, maxSockets };
  return new S3Client({
    region: s.region,
    ...(s.endpoint ? { endpoint: s.endpoint } : {}),
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(s.accessKeyId && s.secretAccessKey
      ? {
          credentials: {
            accessKeyId: s.accessKeyId,
            secretAccessKey: s.secretAccessKey,
            ...(s.sessionToken ? { sessionToken: s.sessionToken } : {}),
          },
        }
      : {}),
    requestHandler: { httpAgent: agent, httpsAgent: agent, connectionTimeout: 10_000 },
  });
}

const CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'InvalidToken',
  'ExpiredToken',
  'CredentialsProviderError',
]);

const DISK_FULL = new Set(['ENOSPC', 'EDQUOT']);

/** A write to the local cache failed for lack of space: not the storage's fault. */
export function isDiskFull(err: unknown): boolean {
  return DISK_FULL.has((err as { code?: unknown } | null)?.code as string);
}

/**
 * True when retrying cannot help: the storage refused who we are or what we asked for, or the
 * cache's disk is full.
 */
export function isPermanentS3Error(err: unknown): boolean {
  if (isDiskFull(err)) return true;
  if (err instanceof S3ServiceException) {
    const status = err.$metadata.httpStatusCode ?? 0;
    return (
      CREDENTIAL_CODES.has(err.name) || (status >= 400 && status < 500 && status !== 408 && status !== 429)
    );
  }
  return err instanceof Error && err.name === 'CredentialsProviderError';
}

/** A one-line description of a storage error that names the object and never the credentials. */
export function describeS3Error(err: unknown, what: string): string {
  if (isDiskFull(err)) {
    return `no space left on the disk of the model cache (MODEL_CACHE_DIR) while writing ${what}: free space there or point MODEL_CACHE_DIR at a larger disk`;
  }
  if (err instanceof S3ServiceException) {
    const status = err.$metadata.httpStatusCode;
    if (CREDENTIAL_CODES.has(err.name) || status === 403) {
      return `object storage refused the credentials for ${what} (${err.name}, HTTP ${status}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's permissions`;
    }
    if (err.name === 'NoSuchKey' || err.name === 'NotFound' || status === 404) {
      return `${what} does not exist in object storage (HTTP ${status})`;
    }
    if (err.name === 'NoSuchBucket') return `the bucket of ${what} does not exist`;
    if (err.name === 'PreconditionFailed' || status === 412) {
      return `${what} was replaced while it was being downloaded (ETag changed)`;
    }
    return `object storage error for ${what}: ${err.name} (HTTP ${status ?? '?'}): ${err.message}`;
  }
  if (err instanceof Error && err.name === 'CredentialsProviderError') {
    return `no storage credentials found for ${what}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`;
  }
  const code = (err as { code?: string } | null)?.code;
  const msg = err instanceof Error ? err.message : String(err);
  return `cannot reach object storage for ${what}: ${code ? `${code}: ` : ''}${msg}`;
}
