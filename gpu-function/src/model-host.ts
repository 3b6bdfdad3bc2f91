// Owns the model: where it comes from, its one load at a time (single flight: every request
// that arrives during a load waits for that same load), the engine once ready, and the state
// /readyz reports. A failed load is forgotten so the next request tries again.
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { EngineFactory, GenerationEngine } from './engine-port.ts';
import { errorMessage, type Logger } from './log.ts';
import type { ServiceMetrics } from './metrics.ts';
import { verifyManifest } from './model-folder/manifest.ts';
import { parseS3Uri, type S3Location } from './weights/s3-uri.ts';
import { WeightsError } from './weights/weights-error.ts';

export type ModelSource = { kind: 's3'; uri: string; location: S3Location } | { kind: 'dir'; path: string };

/** MODEL_URI: s3://bucket/prefix, or a local converted folder (a path or file:// URL). */
export function parseModelSource(uri: string): ModelSource {
  if (uri.startsWith('s3://')) return { kind: 's3', uri, location: parseS3Uri(uri) };
  const path = uri.startsWith('file://') ? new URL(uri).pathname : uri;
  return { kind: 'dir', path: resolve(path) };
}

/** One cache folder per model location, named readably and without collisions. */
export function cacheDirFor(cacheRoot: string, loc: S3Location): string {
  const readable = `${loc.bucket}-${loc.prefix}`.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
  const tag = createHash('sha256').update(`${loc.bucket}/${loc.prefix}`).digest('hex').slice(0, 8);
  return join(resolve(cacheRoot), `${readable}-${tag}`);
}

export interface ModelHostOptions {
  source: ModelSource | null;
  cacheRoot: string;
  /** The storage client, created on first use (the SDK is slow to import; boot stays fast). */
  s3: () => Promise<S3Client>;
  load: { concurrency: number; partBytes: number; stallTimeoutMs: number; retries: number };
  engineFactory: EngineFactory;
  log: Logger;
  metrics: ServiceMetrics;
  /** Called around each load so a long load does not count as idle time. */
  onLoadStart?: () => void;
  onLoadEnd?: () => void;
}

export type ModelState = 'not_loaded' | 'loading' | 'ready' | 'failed';

export class ModelHost {
  private readonly o: ModelHostOptions;
  private loading: Promise<GenerationEngine> | null = null;
  private engine: GenerationEngine | null = null;
  private lastError: WeightsError | Error | null = null;
  private readonly abort = new AbortController();
  manifestSha256: string | null = null;

  constructor(o: ModelHostOptions) {
    this.o = o;
  }

  get configured(): boolean {
    return this.o.source !== null;
  }

  get state(): ModelState {
    if (this.ready) return 'ready';
    if (this.loading) return 'loading';
    return this.lastError ? 'failed' : 'not_loaded';
  }

  get error(): string | null {
    return this.lastError ? this.lastError.message : null;
  }

  get ready(): GenerationEngine | null {
    if (this.engine && !this.engine.alive) this.dropDeadEngine();
    return this.engine;
  }

  /** Forgets an engine whose worker died; the weights stay verified, only the session reopens. */
  private dropDeadEngine(): void {
    const dead = this.engine!;
    this.engine = null;
    this.lastError = new Error('the generation engine stopped; it is opened again on the next request');
    this.o.metrics.ready.set(0);
    void dead.close().catch(() => {});
  }

  /** The engine, loading the model first if needed; concurrent callers share one load. */
  ensureReady(): Promise<GenerationEngine> {
    const engine = this.ready;
    if (engine) return Promise.resolve(engine);
    if (!this.loading) {
      this.loading = this.loadOnce().finally(() => {
        this.loading = null;
      });
    }
    return this.loading;
  }

  private async loadOnce(): Promise<GenerationEngine> {
    const { log, metrics } = this.o;
    const source = this.o.source;
    if (!source) throw new WeightsError('no model configured: set MODEL_URI', 'model_not_configured');
    this.o.onLoadStart?.();
    const t0 = performance.now();
    log.info('model.load_start', source.kind === 's3' ? { uri: source.uri } : { dir: source.path });
    try {
      const dir = await this.fetchWeights(source);
      const ts = performance.now();
      const engine = await this.o.engineFactory(dir);
      const sessionMs = performance.now() - ts;
      metrics.loadPhaseSeconds.set(sessionMs / 1000, { phase: 'session' });
      if (this.abort.signal.aborted) {
        await engine.close();
        throw new WeightsError('the service is shutting down', 'shutting_down');
      }
      this.engine = engine;
      this.lastError = null;
      metrics.ready.set(1);
      metrics.loads.inc({ result: 'ok' });
      log.info('model.ready', {
        provider: engine.provider,
        session_ms: Math.round(sessionMs),
        total_ms: Math.round(performance.now() - t0),
      });
      return engine;
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      this.lastError = e;
      metrics.loads.inc({ result: 'error' });
      log.error('model.load_failed', { error: errorMessage(e), code: (e as WeightsError).code ?? null });
      throw e;
    } finally {
      this.o.onLoadEnd?.();
    }
  }

  private async fetchWeights(source: ModelSource): Promise<string> {
    const { log, metrics } = this.o;
    if (source.kind === 'dir') {
      const tv = performance.now();
      const manifest = await verifyManifest(source.path).catch((err: unknown) => {
        throw new WeightsError(`the model folder is not usable: ${errorMessage(err)}`, 'weights_corrupt');
      });
      metrics.loadPhaseSeconds.set((performance.now() - tv) / 1000, { phase: 'verify' });
      metrics.modelBytes.set(manifest.files.reduce((n, f) => n + f.size, 0));
      return source.path;
    }
    const { loadFromS3 } = await import('./weights/s3-loader.ts');
    const report = await loadFromS3({
      client: await this.o.s3(),
      location: source.location,
      cacheDir: cacheDirFor(this.o.cacheRoot, source.location),
      ...this.o.load,
      log,
      signal: this.abort.signal,
      onBytes: (n) => metrics.loadBytesFetched.inc({}, n),
    });
    this.manifestSha256 = report.manifestSha256;
    metrics.modelBytes.set(report.totalBytes);
    metrics.loadBytesReused.inc({}, report.bytesReused);
    metrics.loadPhaseSeconds.set(report.phases.manifestMs / 1000, { phase: 'manifest' });
    metrics.loadPhaseSeconds.set(report.phases.fetchMs / 1000, { phase: 'fetch' });
    metrics.loadPhaseSeconds.set(report.phases.verifyMs / 1000, { phase: 'verify' });
    return report.dir;
  }

  /** Stops a load in progress and closes the engine. */
  async close(): Promise<void> {
    this.abort.abort(new Error('the service is shutting down'));
    await this.loading?.catch(() => {});
    const engine = this.engine;
    this.engine = null;
    this.o.metrics.ready.set(0);
    await engine?.close();
  }
}
