// A worker for bench:edge that drives KeyLimiter objects directly (no HTTP, KV or tokenizer per
// operation): GET /?keys=K&ops=N&concurrency=C runs N reserve + settle pairs from C concurrent
// callers spread over K keys and answers the elapsed milliseconds.
import type { Env } from '../src/env.ts';
import type { KeyConfig } from '../src/limits/types.ts';

export { KeyLimiter } from '../src/limiter.ts';

const UNLIMITED: KeyConfig = {
  limits: {
    requests_per_minute: 1e12,
    tokens_per_minute: 1e12,
    tokens_per_day: 1e12,
    tokens_per_month: 1e12,
    concurrent_requests: 1e12,
  },
  disabled: false,
};

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const q = new URL(request.url).searchParams;
    const keys = Number(q.get('keys') ?? 1);
    const ops = Number(q.get('ops') ?? 1000);
    const concurrency = Number(q.get('concurrency') ?? 16);
    const run = q.get('run') ?? 'r';
    const stubs = Array.from({ length: keys }, (_, i) =>
      env.KEY_LIMITER.get(env.KEY_LIMITER.idFromName(`bench-${run}-${i}`)),
    );
    let next = 0;
    let refused = 0;
    const started = Date.now(); // advances with I/O, which every call here is
    await Promise.all(
      Array.from({ length: concurrency }, async (_, caller) => {
        const stub = stubs[caller % keys]!;
        while (next++ < ops) {
          const r = await stub.reserve(UNLIMITED, 100);
          if (r.ok) await stub.settle(r.reservationId, 60);
          else refused++;
        }
      }),
    );
    return Response.json({ ms: Date.now() - started, refused });
  },
};
