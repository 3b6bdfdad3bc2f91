import { DurableObject } from 'cloudflare:workers';

/** Per-key limits and quotas, one object per API key, SQLite-backed. */
export class KeyLimiter extends DurableObject {
  async ping(): Promise<string> {
    return 'ok';
  }
}
