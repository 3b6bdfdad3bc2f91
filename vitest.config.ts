import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';
import { EDGE_TEST_SECRETS } from './test/edge/node/global-setup.ts';

// Quiet offline: no telemetry, no Request.cf fetch, no update banner.
process.env.WRANGLER_SEND_METRICS ??= 'false';
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= 'false';
process.env.WRANGLER_HIDE_BANNER ??= 'true';

// Two projects: node-side code (shared/ and gpu-function/) runs in Node; the edge runs inside
// workerd with its real KV and Durable Object bindings from wrangler.toml.
export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      {
        test: {
          name: 'node',
          include: ['test/node/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        // The whole system in real processes (npm start's stack on free ports); slow, so long timeouts.
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 240_000,
        },
      },
      {
        // The worker gets the loopback wire-protocol backend started by the global setup, and
        // short timeouts so cold-start and stall tests take seconds.
        plugins: [
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: './wrangler.toml' },
            miniflare: {
              bindings: {
                ...EDGE_TEST_SECRETS,
                GPU_FUNCTION_URL: inject('backendUrl'),
                GPU_INVOKER_KEY: inject('invokerKey'),
                COLD_START_TIMEOUT_S: '3',
                STREAM_IDLE_TIMEOUT_S: '2',
                MAX_BODY_BYTES: '65536',
              },
            },
          })),
        ],
        test: {
          name: 'edge',
          include: ['test/edge/**/*.test.ts'],
          globalSetup: ['test/edge/node/global-setup.ts'],
          isolate: false,
          testTimeout: 30_000,
        },
      },
    ],
  },
});
