// Wires the GPU function together: settings -> model host, scheduler, lifecycle, routes.
// main.ts adds the HTTP server and process signals; tests may build one in-process.
import type { S3Client } from '@aws-sdk/client-s3';
import type { Hono } from 'hono';
import { createApp } from './app.ts';
import type { EngineFactory } from './engine-port.ts';
import { type ExitReason, Lifecycle } from './lifecycle.ts';
import type { Logger } from './log.ts';
import { createServiceMetrics, recordRun, type ServiceMetrics } from './metrics.ts';
import { ModelHost, parseModelSource } from './model-host.ts';
import { Scheduler } from './scheduler.ts';
import type { ServiceConfig } from './settings.ts';

export interface Service {
  app: Hono;
  host: ModelHost;
  scheduler: Scheduler;
  lifecycle: Lifecycle;
  metrics: ServiceMetrics;
  /** Stops a load in progress, closes the engine and the storage client. */
  close(): Promise<void>;
}

export function createService(
  config: ServiceConfig,
  deps: { engineFactory: EngineFactory; log: Logger; exit: (reason: ExitReason) => void },
): Service {
  const { log } = deps;
  const metrics = createServiceMetrics();
  const lifecycle = new Lifecycle({
    idleTimeoutMs: config.idleTimeoutMs,
    drainTimeoutMs: config.drainTimeoutMs,
    log,
    exit: deps.exit,
  });
  const scheduler = new Scheduler({
    maxRows: config.batch.maxRows,
    ...(config.batch.maxRowsPerKey ? { maxRowsPerKey: config.batch.maxRowsPerKey } : {}),
    kvBudgetBytes: config.batch.kvBudgetBytes,
    maxWaiting: config.queueMax,
    onChange: () => {
      metrics.queueDepth.set(scheduler.waiting);
      metrics.rowsWaiting.set(scheduler.waitingRows);
      metrics.active.set(scheduler.running);
      metrics.kvReservedBytes.set(scheduler.kvBytesReserved);
    },
  });
  let s3: S3Client | null = null;
  const host = new ModelHost({
    source: config.modelUri ? parseModelSource(config.modelUri) : null,
    cacheRoot: config.cacheDir,
    s3: async () => {
      const { createS3Client } = await import('./weights/s3-client.ts');
      s3 ??= createS3Client(config.s3, { maxSockets: config.load.concurrency });
      return s3;
    },
    load: config.load,
    engineFactory: async (dir) => {
      const engine = await deps.engineFactory(dir);
      scheduler.setKvBytesPerToken(engine.kvBytesPerToken);
      engine.onRun((run) => recordRun(metrics, run));
      return engine;
    },
    log,
    metrics,
    onLoadStart: () => lifecycle.loadStarted(),
    onLoadEnd: () => lifecycle.loadEnded(),
  });
  const app = createApp({
    hmacSecret: config.hmacSecret,
    host,
    scheduler,
    lifecycle,
    metrics,
    log,
    heartbeatMs: config.heartbeatMs,
  });
  return {
    app,
    host,
    scheduler,
    lifecycle,
    metrics,
    async close() {
      await host.close();
      s3?.destroy();
    },
  };
}
