import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';

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
        plugins: [
          cloudflareTest({
            wrangler: { configPath: './wrangler.toml' },
            miniflare: {
              bindings: {
                ADMIN_TOKEN: 'test-admin-token',
                GPU_HMAC_SECRET: 'test-hmac-secret',
              },
            },
          }),
        ],
        test: {
          name: 'edge',
          include: ['test/edge/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
    ],
  },
});
