// Node side of the edge test project: starts the wire-protocol backend on loopback and hands its
// URL to the worker (see vitest.config.ts), and makes sure the compiled tokenizer the worker
// bundles exists.
/// <reference path="../provided-context.d.ts" />
import type { TestProject } from 'vitest/node';
import { prepareTokenizer } from './local-edge.ts';
import { startTokenServer } from './token-server.ts';
import { startWireBackend } from './wire-backend.ts';

/** Secrets of the worker under test; the backend verifies signatures with the same one. */
export const EDGE_TEST_SECRETS = {
  GPU_HMAC_SECRET: 'test-hmac-secret-of-at-least-32-bytes',
  ADMIN_TOKEN: 'test-admin-token',
};

export default async function setup(project: TestProject) {
  const tokenizerReady = await prepareTokenizer();
  if (!tokenizerReady) console.warn('edge tests: no tokenizer model found; tests that tokenize are skipped');
  project.provide('tokenizerReady', tokenizerReady);
  // The backend sits behind a stand-in for Cloud Run's invoker IAM, as in production.
  const tokens = await startTokenServer();
  const backend = await startWireBackend(EDGE_TEST_SECRETS.GPU_HMAC_SECRET, { invoker: tokens.accepts });
  project.provide('backendUrl', backend.url);
  project.provide('tokenServerUrl', tokens.url);
  project.provide('invokerKey', tokens.keyJson);
  return async () => {
    await backend.close();
    await tokens.close();
  };
}
