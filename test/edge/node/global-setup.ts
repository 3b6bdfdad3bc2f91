// Node side of the edge test project: starts the wire-protocol backend on loopback and hands its
// URL to the worker (see vitest.config.ts), and makes sure the compiled tokenizer the worker
// bundles exists.
import type { TestProject } from 'vitest/node';
import { startWireBackend } from './wire-backend.ts';

/** Secrets of the worker under test; the backend verifies signatures with the same one. */
export const EDGE_TEST_SECRETS = {
  GPU_HMAC_SECRET: 'test-hmac-secret',
  ADMIN_TOKEN: 'test-admin-token',
};

declare module 'vitest' {
  export interface ProvidedContext {
    backendUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const backend = await startWireBackend(EDGE_TEST_SECRETS.GPU_HMAC_SECRET);
  project.provide('backendUrl', backend.url);
  return () => backend.close();
}
