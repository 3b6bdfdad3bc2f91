// The GPU function's process: HTTP server, optional preload, scale to zero, SIGTERM drain.
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { GPU_FUNCTION_SETTINGS, redactSettings } from '../../shared/src/config.ts';
import { openEngine } from './engine-adapter.ts';
import type { ExitReason } from './lifecycle.ts';
import { createLogger, errorMessage } from './log.ts';
import { createService } from './service.ts';
import { readSettings } from './settings.ts';

const log = createLogger();
let settings: ReturnType<typeof readSettings>;
try {
  settings = readSettings(process.env);
} catch (err) {
  log.error('settings.invalid', { error: errorMessage(err) });
  process.exit(2);
}
const { raw, config } = settings;
log.info('settings', redactSettings(GPU_FUNCTION_SETTINGS, raw));
if (!config.hmacSecret) log.warn('settings.no_hmac_secret', { effect: '/v1/generate answers 503' });
if (!config.modelUri) log.warn('settings.no_model', { effect: '/v1/generate answers 503' });

let exiting = false;
async function exit(reason: ExitReason): Promise<void> {
  if (exiting) return;
  exiting = true;
  // Stop accepting, close the engine, then leave; a stuck close must not keep the process up.
  setTimeout(() => process.exit(0), 5000).unref();
  server.close();
  (server as Server).closeAllConnections();
  await service
    .close()
    .catch((err: unknown) => log.error('shutdown.close_failed', { error: errorMessage(err) }));
  log.info('exit', { reason });
  process.exit(0);
}

const service = createService(config, {
  engineFactory: (dir) =>
    openEngine(dir, log, { chunkTiming: { targetMs: config.batch.chunkTargetMs, maxSteps: 64 } }),
  log,
  exit: (reason) => void exit(reason),
});

const server = serve({ fetch: service.app.fetch, hostname: config.host, port: config.port }, (info) => {
  log.info('listening', { url: `http://${config.host}:${info.port}` });
  service.lifecycle.start();
  if (config.preload && service.host.configured) {
    service.host.ensureReady().catch(() => {
      // Logged by the host; the first request tries again.
    });
  }
});

process.on('SIGTERM', () => void service.lifecycle.drain('sigterm'));
process.on('SIGINT', () => void service.lifecycle.drain('sigint'));
