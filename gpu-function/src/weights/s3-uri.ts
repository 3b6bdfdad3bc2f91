// `s3://bucket/prefix` addresses of a model folder in object storage.

export interface S3Location {
  bucket: string;
  /** Key prefix without a trailing slash ('' for the bucket root). */
  prefix: string;
}

export function parseS3Uri(uri: string): S3Location {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(uri.trim());
  if (!m) throw new Error(`not an s3:// URI: '${uri}' (expected s3://bucket/prefix)`);
  const bucket = m[1]!;
  // Bucket names: 3-63 chars of lowercase letters, digits, dots and hyphens (R2 and MinIO agree).
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new Error(`'${bucket}' is not a valid bucket name`);
  }
  const prefix = (m[2] ?? '').replace(/\/+$/, '');
  return { bucket, prefix };
}

/** The object key of a file inside the model folder. */
export function objectKey(loc: S3Location, path: string): string {
  return loc.prefix === '' ? path : `${loc.prefix}/${path}`;
}

export function formatS3Uri(loc: S3Location, path?: string): string {
  const key = path === undefined ? loc.prefix : objectKey(loc, path);
  return `s3://${loc.bucket}/${key}`;
}
