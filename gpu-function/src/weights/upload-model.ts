// Uploads a converted model folder to S3-compatible storage so the GPU function can load it.
// manifest.json is written last, after every file was uploaded and its bytes hashed to the
// manifest's SHA-256 on the way out, so a new prefix never shows a manifest that points at
// half-uploaded files. A prefix that already holds a manifest may be serving: it is refused
// unless `replace` is set, and even then its manifest is never removed (a loader finds either
// the old manifest or the new one, never none).

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { HeadObjectCommand, PutObjectCommand, type S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { MANIFEST_NAME, parseManifestFiles } from './manifest-files.ts';
import { describeS3Error } from './s3-client.ts';
import { formatS3Uri, objectKey, type S3Location } from './s3-uri.ts';

export interface UploadProgress {
  file: string;
  uploadedBytes: number;
  totalBytes: number;
}

export interface UploadOptions {
  client: S3Client;
  location: S3Location;
  modelDir: string;
  /** Multipart part size (at least 5 MiB, the S3 minimum). */
  partBytes?: number;
  /** Parts in flight per file. */
  queueSize?: number;
  onProgress?: (p: UploadProgress) => void;
  signal?: AbortSignal;
  /**
   * Upload into a prefix that already holds a model. Its files are overwritten while instances
   * may be loading them (those loads fail their checksum and retry); a new prefix is safer.
   */
  replace?: boolean;
}

export class UploadError extends Error {
  override name = 'UploadError';
}

/** Passes bytes through while hashing them. */
function hashingStream(): { stream: Transform; digest: () => string } {
  const hash = createHash('sha256');
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  return { stream, digest: () => hash.digest('hex') };
}

async function objectExists(client: S3Client, bucket: string, key: string, signal?: AbortSignal) {
  try {
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    return true;
  } catch (err) {
    if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404) return false;
    throw err;
  }
}

export async function uploadModel(o: UploadOptions): Promise<{ files: number; bytes: number }> {
  const manifestPath = join(o.modelDir, MANIFEST_NAME);
  let manifestBytes: Uint8Array;
  try {
    manifestBytes = await readFile(manifestPath);
  } catch {
    throw new UploadError(`${manifestPath} not found: upload a folder written by the converter`);
  }
  const manifest = parseManifestFiles(manifestBytes);
  for (const f of manifest.files) {
    const s = await stat(join(o.modelDir, f.path)).catch(() => null);
    if (!s?.isFile())
      throw new UploadError(`${f.path} is listed in the manifest but missing from ${o.modelDir}`);
    if (s.size !== f.size) {
      throw new UploadError(`${f.path} is ${s.size} bytes but the manifest says ${f.size}`);
    }
  }

  const { bucket } = o.location;
  const send = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw new UploadError(describeS3Error(err, what));
    }
  };
  const manifestKey = objectKey(o.location, MANIFEST_NAME);
  const manifestUri = formatS3Uri(o.location, MANIFEST_NAME);
  if (!o.replace && (await send(manifestUri, () => objectExists(o.client, bucket, manifestKey, o.signal)))) {
    throw new UploadError(
      `${manifestUri} exists: a model may be served from this prefix. Upload to a new prefix (e.g. .../v2) and point MODEL_URI at it, or pass --replace to overwrite this one in place.`,
    );
  }

  let done = 0;
  for (const f of manifest.files) {
    const hashing = hashingStream();
    const body = createReadStream(join(o.modelDir, f.path)).pipe(hashing.stream);
    const upload = new Upload({
      client: o.client,
      params: { Bucket: bucket, Key: objectKey(o.location, f.path), Body: body, ContentLength: f.size },
      partSize: Math.max(5 * 1024 * 1024, o.partBytes ?? 16 * 1024 * 1024),
      queueSize: o.queueSize ?? 4,
      leavePartsOnError: false,
    });
    const onAbort = () => void upload.abort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    upload.on('httpUploadProgress', (p) => {
      o.onProgress?.({
        file: f.path,
        uploadedBytes: done + Math.min(p.loaded ?? 0, f.size),
        totalBytes: manifest.totalBytes,
      });
    });
    try {
      await send(formatS3Uri(o.location, f.path), () => upload.done());
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
    }
    const digest = hashing.digest();
    if (digest !== f.sha256) {
      throw new UploadError(
        `${f.path} changed or is corrupt: its SHA-256 is ${digest}, the manifest says ${f.sha256}; the manifest was not uploaded`,
      );
    }
    done += f.size;
    o.onProgress?.({ file: f.path, uploadedBytes: done, totalBytes: manifest.totalBytes });
  }

  await send(formatS3Uri(o.location, MANIFEST_NAME), () =>
    o.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: manifestKey,
        Body: manifestBytes,
        ContentType: 'application/json',
      }),
      { abortSignal: o.signal },
    ),
  );
  return { files: manifest.files.length + 1, bytes: manifest.totalBytes + manifestBytes.length };
}
