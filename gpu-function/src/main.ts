import { serve } from '@hono/node-server';
import { GPU_FUNCTION_SETTINGS, loadSettings } from '../../shared/src/config.ts';
import { createApp } from './app.ts';

const settings = loadSettings(GPU_FUNCTION_SETTINGS, process.env);
const app = createApp();
const port = Number(settings.PORT);
const server = serve({ fetch: app.fetch, hostname: settings.HOST, port }, (info) => {
  console.log(`gpu-function listening on http://${settings.HOST}:${info.port}`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
