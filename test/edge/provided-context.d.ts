// Values the edge project's global setup (node/global-setup.ts) provides to the tests and to the
// worker's bindings (vitest.config.ts).
import 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The loopback wire-protocol backend. */
    backendUrl: string;
    /** False without a tokenizer model (../shared absent): tests that tokenize skip. */
    tokenizerReady: boolean;
  }
}
