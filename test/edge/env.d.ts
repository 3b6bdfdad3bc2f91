// Types of `cloudflare:workers` env/exports for this worker, as the vitest plugin provides them.
import type { Env as WorkerEnv } from '../../edge/src/env.ts';

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {}
    interface GlobalProps {
      mainModule: typeof import('../../edge/src/index.ts');
      durableNamespaces: 'KeyLimiter';
    }
  }
}
