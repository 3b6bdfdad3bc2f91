// Fetches a converted model folder from S3-compatible storage into the local cache:
//
//   1. manifest.json (small, one GET): which files, their sizes and SHA-256;
//   2. files already verified in the cache and unchanged are kept (warm start);
//   3. the rest are fetched as fixed-size ranged GETs, LOAD_CONCURRENCY at a time, each streamed
//      into `.partial/<file>.part` at its offset; finished parts are recorded so an interrupted
//      load resumes where it stopped;
//   4. each file is hashed as its parts arrive (in order, read back from disk); a mismatch is
//      fetched once more from scratch, then reported;
//   5. files are moved into place, manifest.json is written, and the verified record last.
//
// Only GetObject and HeadObject are used (no listing), which AWS S3, R2 and MinIO all serve alike.

import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { errorMessage, type Logger } from '../log.ts';
import {
  readVerifiedRecord,
  trustedCopy,
  VERIFIED_RECORD,
  type VerifiedFile,
  writeVerifiedRecord,
} from './cache-record.ts';
import { fetchRangeOnce, withRetries } from './fetch-range.ts';
import { FrontierHash } from './frontier-hash.ts';
import { sha256File } from './hash-file.ts';
import {
  MANIFEST_NAME,
  type ManifestFile,
  parseManifestFiles,
  type RemoteManifest,
} from './manifest-files.ts';
import { PARTIAL_DIR, PartRecordWriter, partialPaths, readPartRecord, removePartial } from './part-record.ts';
import { runPool } from './pool.ts';
import { ProgressReporter } from './progress.ts';
import { describeS3Error, isDiskFull } from './s3-client.ts';
import { formatS3Uri, objectKey, type S3Location } from './s3-uri.ts';
import { WeightsError } from './weights-error.ts';

export interface S3LoadOptions {
  client: S3Client;
  location: S3Location;
  /** The folder this model is cached in (created if needed). */
  cacheDir: string;
  concurrency: number;
  partBytes: number;
  stallTimeoutMs: number;
  retries: number;
  log: Logger;
  signal?: AbortSignal;
  /** Called with every chunk of bytes written (for metrics). */
  onBytes?: (n: number) => void;
}

export interface LoadReport {
  dir: string;
  manifestSha256: string;
  totalBytes: number;
  /** True when every file came from the cache. */
  fromCache: boolean;
  bytesFetched: number;
  /** Bytes not fetched: whole files from the cache and parts kept from an interrupted load. */
  bytesReused: number;
  phases: { manifestMs: number; fetchMs: number; verifyMs: number };
}

interface FileJob {
  file: ManifestFile;
  key: string;
  etag: string;
  writer: PartRecordWriter;
  handle: FileHandle;
  hasher: FrontierHash;
}

interface Downloaded {
  /** SHA-256 of each file computed while it arrived (null: hash it again from disk). */
  digests: Map<string, string | null>;
  /** When the last byte was on disk. */
  fetchedAt: number;
}

interface PartJob {
  job: FileJob;
  index: number;
  start: number;
  end: number;
}

class S3ModelLoad {
  private readonly o: S3LoadOptions;
  private readonly signal: AbortSignal;
  private progress = new ProgressReporter(0, { debug() {}, info() {}, warn() {}, error() {} });
  private bytesReused = 0;

  constructor(o: S3LoadOptions) {
    this.o = o;
    this.signal = o.signal ?? new AbortController().signal;
  }

  private uri(path: string): string {
    return formatS3Uri(this.o.location, path);
  }

  private retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return withRetries(fn, {
      attempts: this.o.retries,
      signal: this.signal,
      onRetry: (attempt, err, delayMs) =>
        this.o.log.warn('load.retry', {
          object: what,
          attempt,
          of: this.o.retries,
          delay_ms: Math.round(delayMs),
          error: describeS3Error(err, what),
        }),
    });
  }

  private async fetchManifest(): Promise<RemoteManifest> {
    const what = this.uri(MANIFEST_NAME);
    const bytes = await this.retrying(what, async () => {
      const res = await this.o.client.send(
        new GetObjectCommand({
          Bucket: this.o.location.bucket,
          Key: objectKey(this.o.location, MANIFEST_NAME),
        }),
        { abortSignal: AbortSignal.any([this.signal, AbortSignal.timeout(this.o.stallTimeoutMs)]) },
      );
      return res.Body!.transformToByteArray();
    });
    return parseManifestFiles(bytes);
  }

  /** Serves the cache without storage when it is complete (storage down, cache still good). */
  private async completeLocalCopy(): Promise<RemoteManifest | null> {
    try {
      const local = parseManifestFiles(await readFile(join(this.o.cacheDir, MANIFEST_NAME)));
      const record = await readVerifiedRecord(this.o.cacheDir);
      if (record?.manifestSha256 !== local.sha256) return null;
      for (const f of local.files) if (!(await trustedCopy(this.o.cacheDir, f, record))) return null;
      return local;
    } catch {
      return null;
    }
  }

  async run(): Promise<LoadReport> {
    const { cacheDir, log } = this.o;
    await mkdir(join(cacheDir, PARTIAL_DIR), { recursive: true });

    const t0 = performance.now();
    let manifest: RemoteManifest;
    try {
      manifest = await this.fetchManifest();
    } catch (err) {
      const message = describeS3Error(err, this.uri(MANIFEST_NAME));
      const local = this.signal.aborted ? null : await this.completeLocalCopy();
      if (!local) throw new WeightsError(message, 'weights_unavailable', { cause: err });
      log.warn('load.storage_unreachable_using_cache', { error: message, manifest_sha256: local.sha256 });
      return this.report(local, true, 0, { manifestMs: performance.now() - t0, fetchMs: 0, verifyMs: 0 });
    }
    const manifestMs = performance.now() - t0;
    log.info('load.manifest', {
      uri: this.uri(MANIFEST_NAME),
      files: manifest.files.length,
      total_bytes: manifest.totalBytes,
      manifest_sha256: manifest.sha256,
      ms: Math.round(manifestMs),
    });

    const record = await readVerifiedRecord(cacheDir);
    const verified: Record<string, VerifiedFile> = {};
    const missing: ManifestFile[] = [];
    for (const f of manifest.files) {
      const kept = await trustedCopy(cacheDir, f, record);
      if (kept) {
        verified[f.path] = kept;
        this.bytesReused += f.size;
      } else {
        missing.push(f);
      }
    }
    if (missing.length === 0 && record?.manifestSha256 === manifest.sha256) {
      log.info('load.cache_hit', { dir: cacheDir, bytes: manifest.totalBytes });
      return this.report(manifest, true, 0, { manifestMs, fetchMs: 0, verifyMs: 0 });
    }

    const t1 = performance.now();
    const toFetch = missing.reduce((n, f) => n + f.size, 0);
    this.progress = new ProgressReporter(toFetch, log);
    log.info('load.fetch_start', {
      files: missing.length,
      bytes: toFetch,
      reused_files: manifest.files.length - missing.length,
      concurrency: this.o.concurrency,
      part_bytes: this.o.partBytes,
    });
    const first = await this.download(missing);
    let fetchMs = first.fetchedAt - t1;
    log.info('load.fetched', {
      ...this.progress.snapshot(),
      resumed_bytes: this.bytesReused - (manifest.totalBytes - toFetch),
      ms: Math.round(fetchMs),
    });

    // Hashing ran alongside the download; what is left is its tail and the checks.
    const t2 = first.fetchedAt;
    let refetchMs = 0;
    for (const f of missing) {
      const ok = await this.verifyAndPlace(f, first.digests.get(f.path) ?? null);
      if (ok) {
        verified[f.path] = ok;
        continue;
      }
      log.warn('load.checksum_mismatch', { file: f.path, action: 'fetching it again' });
      const tr = performance.now();
      await removePartial(cacheDir, f.path);
      const again = await this.download([f]);
      refetchMs += again.fetchedAt - tr;
      const placed = await this.verifyAndPlace(f, again.digests.get(f.path) ?? null);
      if (!placed) {
        await removePartial(cacheDir, f.path);
        throw new WeightsError(
          `${this.uri(f.path)} does not match the manifest's SHA-256 even after a fresh download: the stored object is corrupt or belongs to another upload`,
          'weights_corrupt',
        );
      }
      verified[f.path] = placed;
    }
    fetchMs += refetchMs;
    const verifyMs = performance.now() - t2 - refetchMs;

    await this.removeStrayFiles(manifest);
    await writeFile(join(cacheDir, MANIFEST_NAME), manifest.bytes);
    await writeVerifiedRecord(cacheDir, { manifestSha256: manifest.sha256, files: verified });
    log.info('load.verified', { files: manifest.files.length, ms: Math.round(verifyMs) });
    return this.report(manifest, false, this.progress.bytes, { manifestMs, fetchMs, verifyMs });
  }

  private report(
    manifest: RemoteManifest,
    fromCache: boolean,
    bytesFetched: number,
    phases: LoadReport['phases'],
  ): LoadReport {
    return {
      dir: this.o.cacheDir,
      manifestSha256: manifest.sha256,
      totalBytes: manifest.totalBytes,
      fromCache,
      bytesFetched,
      bytesReused: fromCache ? manifest.totalBytes : this.bytesReused,
      phases,
    };
  }

  /** Heads every file, then fetches all their missing parts through one bounded pool. */
  private async download(files: ManifestFile[]): Promise<Downloaded> {
    const jobs: FileJob[] = [];
    try {
      await runPool(files, this.o.concurrency, async (f) => {
        jobs.push(await this.prepare(f));
      });
      const parts: PartJob[] = [];
      for (const job of jobs) {
        const done = new Set(job.writer.record.done);
        const count = Math.ceil(job.file.size / this.o.partBytes);
        for (let i = 0; i < count; i++) {
          if (done.has(i)) continue;
          const start = i * this.o.partBytes;
          parts.push({ job, index: i, start, end: Math.min(job.file.size, start + this.o.partBytes) });
        }
      }
      await runPool(parts, this.o.concurrency, (p) => this.fetchPart(p));
      const fetchedAt = performance.now();
      const digests = new Map<string, string | null>();
      for (const job of jobs) digests.set(job.file.path, await job.hasher.digest().catch(() => null));
      return { digests, fetchedAt };
    } finally {
      await Promise.all(jobs.map((j) => j.handle.close()));
    }
  }

  private async prepare(f: ManifestFile): Promise<FileJob> {
    const key = objectKey(this.o.location, f.path);
    const what = this.uri(f.path);
    const head = await this.retrying(what, () =>
      this.o.client.send(new HeadObjectCommand({ Bucket: this.o.location.bucket, Key: key }), {
        abortSignal: AbortSignal.any([this.signal, AbortSignal.timeout(this.o.stallTimeoutMs)]),
      }),
    ).catch((err: unknown) => {
      throw new WeightsError(describeS3Error(err, what), 'weights_unavailable', { cause: err });
    });
    if (head.ContentLength !== f.size) {
      throw new WeightsError(
        `${what} is ${head.ContentLength} bytes but the manifest says ${f.size}: the upload is incomplete or from another model`,
        'weights_corrupt',
      );
    }
    const etag = head.ETag ?? '';
    const paths = partialPaths(this.o.cacheDir, f.path);
    const previous = await readPartRecord(paths.record);
    const dataSize = await stat(paths.data).then(
      (s) => s.size,
      () => -1,
    );
    const resumable =
      previous !== null &&
      previous.etag === etag &&
      previous.size === f.size &&
      previous.partBytes === this.o.partBytes &&
      dataSize === f.size;
    const record = resumable ? previous : { etag, size: f.size, partBytes: this.o.partBytes, done: [] };
    if (resumable) {
      const kept = previous.done.reduce(
        (n, i) => n + Math.min(this.o.partBytes, f.size - i * this.o.partBytes),
        0,
      );
      this.bytesReused += kept;
      this.o.log.info('load.resume', { file: f.path, parts_done: previous.done.length, bytes_kept: kept });
    }
    const handle = await open(paths.data, resumable ? 'r+' : 'w+');
    if (!resumable) await handle.truncate(f.size);
    const writer = new PartRecordWriter(paths.record, record);
    await writer.save();
    const hasher = new FrontierHash(handle, f.size, this.o.partBytes, record.done);
    return { file: f, key, etag, writer, handle, hasher };
  }

  private async fetchPart(p: PartJob): Promise<void> {
    const { job } = p;
    const what = this.uri(job.file.path);
    let written = 0;
    await this.retrying(`${what} bytes ${p.start}-${p.end - 1}`, async () => {
      // A failed attempt may have written some bytes; they are fetched again, so uncount them.
      if (written > 0) this.progress.add(-written);
      written = 0;
      await fetchRangeOnce({
        client: this.o.client,
        bucket: this.o.location.bucket,
        key: job.key,
        etag: job.etag,
        objectSize: job.file.size,
        start: p.start,
        end: p.end,
        file: job.handle,
        stallTimeoutMs: this.o.stallTimeoutMs,
        signal: this.signal,
        onBytes: (n) => {
          written += n;
          this.progress.add(n);
          this.o.onBytes?.(n);
        },
      });
    }).catch(async (err: unknown) => {
      if (err instanceof WeightsError) throw err;
      const message = describeS3Error(err, what);
      if ((err as { name?: string }).name === 'PreconditionFailed')
        await removePartial(this.o.cacheDir, job.file.path);
      throw new WeightsError(message, isDiskFull(err) ? 'disk_full' : 'weights_unavailable', { cause: err });
    });
    await job.writer.markDone(p.index);
    job.hasher.partDone(p.index);
  }

  /** Checks the downloaded file's hash; on a match moves it into place and returns its record entry. */
  private async verifyAndPlace(f: ManifestFile, computed: string | null): Promise<VerifiedFile | null> {
    const paths = partialPaths(this.o.cacheDir, f.path);
    const digest = computed ?? (await sha256File(paths.data, this.signal));
    if (digest !== f.sha256) return null;
    const target = join(this.o.cacheDir, f.path);
    await mkdir(dirname(target), { recursive: true });
    await rename(paths.data, target);
    await rm(paths.record, { force: true });
    const s = await stat(target);
    return { size: s.size, mtimeMs: s.mtimeMs, sha256: digest };
  }

  /** Drops files of an older model version so the cache does not grow without bound. */
  private async removeStrayFiles(manifest: RemoteManifest): Promise<void> {
    const keep = new Set([MANIFEST_NAME, VERIFIED_RECORD, PARTIAL_DIR, ...manifest.files.map((f) => f.path)]);
    const tops = new Set(manifest.files.map((f) => f.path.split('/')[0]!));
    for (const entry of await readdir(this.o.cacheDir)) {
      if (keep.has(entry) || tops.has(entry)) continue;
      await rm(join(this.o.cacheDir, entry), { recursive: true, force: true });
      this.o.log.info('load.removed_stale', { file: entry });
    }
  }
}

/** Loads the model into `cacheDir`; throws WeightsError with a clear message on failure. */
export async function loadFromS3(o: S3LoadOptions): Promise<LoadReport> {
  try {
    return await new S3ModelLoad(o).run();
  } catch (err) {
    if (err instanceof WeightsError) throw err;
    if (isDiskFull(err)) {
      throw new WeightsError(describeS3Error(err, `the model cache ${o.cacheDir}`), 'disk_full', {
        cause: err,
      });
    }
    throw new WeightsError(`loading the model failed: ${errorMessage(err)}`, 'weights_unavailable', {
      cause: err,
    });
  }
}
