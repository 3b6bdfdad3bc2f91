// Values the edge project's global setup (node/global-setup.ts) provides to the tests and to the
// worker's bindings (vitest.config.ts).
import 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The loopback wire-protocol backend. */
    backendUrl: string;
    /** The stand-in token endpoint's control address (node/token-server.ts). */
    tokenServerUrl: string;
    /** The service-account key file the worker mints ID tokens with (GPU_INVOKER_KEY). */
    invokerKey: string;
    /** False without a tokenizer model (../shared absent): tests that tokenize skip. */
    tokenizerReady: boolean;
  }
}
