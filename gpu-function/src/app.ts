import { Hono } from 'hono';
import { createMiddleware } from 'hono/factory';
import { ApiError, badRequest, toApiError, unavailable } from '../../shared/src/errors.ts';
import { parseGenerateRequest } from '../../shared/src/protocol/generate.ts';
import { NonceCache } from '../../shared/src/signing.ts';
import { AuthError, authenticate, readSignedBody } from './auth.ts';
import { generationStream } from './generate-stream.ts';
import type { Lifecycle } from './lifecycle.ts';
import type { Logger } from './log.ts';
import type { ServiceMetrics } from './metrics.ts';
import type { ModelHost } from './model-host.ts';
import { type Admission, enterRequest } from './request-units.ts';
import type { Scheduler } from './scheduler.ts';

/** 2048 ids of up to 5 digits plus parameters fit well inside this. */
const MAX_BODY_BYTES = 64 * 1024;

export interface AppDeps {
  hmacSecret: string | undefined;
  host: ModelHost;
  scheduler: Scheduler;
  lifecycle: Lifecycle;
  metrics: ServiceMetrics;
  log: Logger;
  heartbeatMs: number;
}

/** The GPU function's HTTP surface. Routes are thin: they validate and hand work on. */
export function createApp(deps: AppDeps): Hono {
  const { host, scheduler, lifecycle, metrics, log } = deps;
  const nonces = new NonceCache();
  let nextId = 1;
  const app = new Hono();

  // The probes' route: it says only that the process is up.
  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  // Everything else is for the edge (and operators holding the secret) only: readiness carries
  // load errors (bucket, paths) and metrics carry traffic volumes.
  const requireSignature = createMiddleware(async (c, next) => {
    if (!deps.hmacSecret) {
      throw unavailable('The GPU function is not configured: GPU_HMAC_SECRET is not set.', 60);
    }
    try {
      await authenticate(deps.hmacSecret, nonces, c.req.raw);
    } catch (err) {
      if (err instanceof AuthError) {
        if (c.req.path === '/v1/generate') metrics.requests.inc({ outcome: 'unauthorized' });
        log.warn('auth.rejected', { path: c.req.path, reason: err.reason });
      }
      throw err;
    }
    await next();
  });
  app.use('/readyz', requireSignature);
  app.use('/metrics', requireSignature);

  app.get('/readyz', (c) => {
    const state = lifecycle.draining ? 'draining' : host.state;
    const engine = host.ready;
    if (state === 'ready' && engine) {
      return c.json({ status: 'ready', provider: engine.provider, manifest_sha256: host.manifestSha256 });
    }
    return c.json({ status: state, ...(host.error ? { error: host.error } : {}) }, 503);
  });

  app.get('/metrics', (c) => {
    metrics.queueDepth.set(scheduler.waiting);
    metrics.active.set(scheduler.running);
    return c.body(metrics.registry.render(), 200, { 'content-type': 'text/plain; version=0.0.4' });
  });

  const refuseWhileDraining = createMiddleware(async (_c, next) => {
    if (lifecycle.draining) {
      metrics.requests.inc({ outcome: 'draining' });
      throw unavailable('The GPU function is shutting down; retry on a new instance.', 1);
    }
    await next();
  });

  app.post('/v1/generate', refuseWhileDraining, requireSignature, async (c) => {
    let body: Uint8Array<ArrayBuffer>;
    try {
      body = await readSignedBody(c.req.raw, MAX_BODY_BYTES);
    } catch (err) {
      metrics.requests.inc({ outcome: err instanceof AuthError ? 'unauthorized' : 'invalid' });
      if (err instanceof ApiError) log.warn('generate.body_refused', { code: err.code });
      throw err;
    }
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(body));
    } catch {
      metrics.requests.inc({ outcome: 'invalid' });
      throw badRequest('The request body is not valid JSON.');
    }
    let req: ReturnType<typeof parseGenerateRequest>;
    try {
      req = parseGenerateRequest(json);
    } catch (err) {
      metrics.requests.inc({ outcome: 'invalid' });
      throw err;
    }
    if (!host.configured) throw unavailable('No model is configured (MODEL_URI).', 60);
    let admission: Admission;
    try {
      admission = enterRequest(scheduler, req);
    } catch (err) {
      metrics.requests.inc({
        outcome: err instanceof ApiError && err.status === 400 ? 'invalid' : 'queue_full',
      });
      log.warn('generate.queue_full', { waiting: scheduler.waiting });
      throw err;
    }
    metrics.queueDepth.set(scheduler.waiting);
    lifecycle.begin();
    const id = `g${nextId++}`;
    const stream = generationStream(
      id,
      req,
      admission,
      {
        host,
        scheduler,
        metrics,
        log,
        heartbeatMs: deps.heartbeatMs,
        shutdownSignal: lifecycle.cancelSignal,
      },
      c.req.raw.signal,
      () => {
        metrics.queueDepth.set(scheduler.waiting);
        lifecycle.end();
      },
    );
    return new Response(stream, {
      headers: { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-request-id': id },
    });
  });

  app.onError((err) => {
    if (!(err instanceof ApiError)) log.error('http.error', { error: err.message });
    return toApiError(err).toResponse();
  });
  app.notFound((c) =>
    c.json({ error: { message: 'Not found.', type: 'not_found_error', param: null, code: null } }, 404),
  );
  return app;
}
