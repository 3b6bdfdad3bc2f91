// `npm run bench:edge`: what the edge costs. The worker, bundled by `wrangler deploy --dry-run`
// exactly as it would be uploaded, runs in Miniflare (workerd, the production runtime; local KV
// and SQLite-backed Durable Objects) in front of the loopback wire-protocol backend, which
// answers instantly. So the difference between calling the backend directly and calling it
// through the edge is the edge's own work: authentication (KV), the limiter object (reserve +
// settle), tokenization, signing, forwarding and the response. Prints:
//   - latency through the edge next to the backend called directly (signed, as the edge does),
//     p50 and p99 over sequential requests (the paths interleaved, so they share the machine's
//     conditions), and what the edge adds (targets: p50 <= 5 ms, p99 <= 20 ms);
//   - limiter throughput: reserve + settle pairs per second against the KeyLimiter objects
//     themselves (edge/bench/limiter-worker.ts, in the same runtime) for one key (every call
//     serialized through one object) and for many keys; and whole completions per second through
//     the edge for one key and for many keys.
//
// Options: --requests N (sequential requests per path, default 300), --concurrency N (default 16),
//          --throughput-requests N (completions per throughput run, default 600),
//          --limiter-ops N (reserve + settle pairs per limiter run, default 2000).

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { completionBody, usageOf } from '../../edge/src/completions/format.ts';
import { parseCompletionParams } from '../../edge/src/completions/params.ts';
import { StopMatcher } from '../../edge/src/completions/stop-matcher.ts';
import { readJsonBody } from '../../edge/src/http/json-body.ts';
import { MODEL_ID } from '../../shared/src/model-facts.ts';
import { type GenerateFrame, parseGenerateRequest } from '../../shared/src/protocol/generate.ts';
import { readFrames } from '../../shared/src/protocol/ndjson.ts';
import { signRequest } from '../../shared/src/signing.ts';
import { Tokenizer } from '../../shared/src/tokenizer/index.ts';
import { startBundledEdge } from '../../test/edge/node/local-edge.ts';
import { startWireBackend } from '../../test/edge/node/wire-backend.ts';
import { COMPILED_TOKENIZER_PATH, REPO_ROOT } from '../lib/tokenizer-asset.ts';

const HMAC_SECRET = 'bench-hmac-secret';
const ADMIN_TOKEN = 'bench-admin-token';
const PROMPT = '吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。';
const LIMITS = {
  requests_per_minute: 1_000_000,
  tokens_per_minute: 100_000_000,
  tokens_per_day: 1_000_000_000,
  tokens_per_month: 1_000_000_000,
};

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '16' },
    'throughput-requests': { type: 'string', default: '600' },
    'limiter-ops': { type: 'string', default: '2000' },
  },
});
const REQUESTS = Number(values.requests);
const CONCURRENCY = Number(values.concurrency);
const THROUGHPUT_REQUESTS = Number(values['throughput-requests']);
const LIMITER_OPS = Number(values['limiter-ops']);

/** Reserve + settle pairs per second straight against the limiter objects. */
async function limiterThroughput(): Promise<void> {
  const worker = await startBundledEdge({}, path.join(REPO_ROOT, 'edge/bench/limiter-worker.ts'));
  try {
    const run = async (keys: number, concurrency: number, label: string) => {
      const q = `keys=${keys}&ops=${LIMITER_OPS}&concurrency=${concurrency}&run=${label}`;
      const res = await fetch(`${worker.url}/?${q}`);
      await expectOk(res, 'limiter bench');
      const { ms, refused } = (await res.json()) as { ms: number; refused: number };
      if (refused > 0) throw new Error(`limiter refused ${refused} reservations`);
      return LIMITER_OPS / (ms / 1000);
    };
    await run(CONCURRENCY, CONCURRENCY, 'warm'); // creates the objects and their tables, warms the code
    const serial = await run(1, 1, 'serial');
    const one = await run(1, CONCURRENCY, 'one');
    const many = await run(CONCURRENCY, CONCURRENCY, 'many');
    console.log(`\nlimiter objects alone: ${LIMITER_OPS} reserve + settle pairs per run`);
    console.log(
      `  one caller, one key                 ${serial.toFixed(0).padStart(6)} pairs/s (${(1000 / serial).toFixed(2)} ms per pair)`,
    );
    console.log(
      `  ${String(CONCURRENCY).padEnd(2)} callers, one key (one object)  ${one.toFixed(0).padStart(6)} pairs/s`,
    );
    console.log(
      `  ${String(CONCURRENCY).padEnd(2)} callers, ${CONCURRENCY} keys (${CONCURRENCY} objects)  ${many.toFixed(0).padStart(6)} pairs/s`,
    );
  } finally {
    await worker.close();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

interface Stats {
  p50: number;
  p99: number;
  mean: number;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
  };
}

/**
 * Times `n` rounds of every path, interleaved (one request of each per round, in turn), so all
 * paths see the same conditions on a busy machine.
 */
async function timedInterleaved(n: number, paths: (() => Promise<void>)[]): Promise<number[][]> {
  const samples = paths.map(() => [] as number[]);
  for (let i = 0; i < n; i++) {
    for (const [k, once] of paths.entries()) {
      const t0 = performance.now();
      await once();
      samples[k]!.push(performance.now() - t0);
    }
  }
  return samples;
}

async function expectOk(res: Response, what: string): Promise<void> {
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
}

/**
 * The edge's own computation for one completion (body, validation, tokenizing, hashing the key,
 * signing, detokenizing and stop matching one token, the response), run in Node on the same
 * modules: what the edge costs apart from its I/O (KV, limiter object, GPU function).
 */
async function computeCost(): Promise<Stats> {
  const tokenizer = Tokenizer.fromCompiled(new Uint8Array(readFileSync(COMPILED_TOKENIZER_PATH)));
  const body = JSON.stringify({ model: MODEL_ID, prompt: PROMPT, max_tokens: 16, stop: ['\n\n'] });
  const once = async () => {
    const request = new Request('http://edge/v1/completions', { method: 'POST', body });
    const params = parseCompletionParams(await readJsonBody(request, 262_144), { maxChoices: 32 });
    const ids = tokenizer.encode(PROMPT);
    const generate = parseGenerateRequest({
      prompt_ids: ids,
      max_new_tokens: params.generation.max_tokens,
      stop_ids: [],
    });
    await crypto.subtle.digest(
      'SHA-256',
      new TextEncoder().encode('sk-jslm-0123456789abcdef0123456789abcdef012'),
    );
    const wire = new Uint8Array(new TextEncoder().encode(JSON.stringify(generate)));
    await signRequest(HMAC_SECRET, 'POST', 'http://gpu.local/v1/generate', wire);
    const decoder = tokenizer.createStreamDecoder();
    const text = new StopMatcher(params.generation.stop).push(decoder.push(ids[0]!) + decoder.flush()).text;
    JSON.stringify(
      completionBody(
        { id: 'cmpl-x', created: 0, systemFingerprint: 'fp_x' },
        [{ text, finish: 'length' }],
        usageOf(ids.length, 1),
      ),
    );
  };
  for (let i = 0; i < 500; i++) await once();
  const samples = await timedInterleaved(3000, [once]);
  return stats(samples[0]!.map((ms) => ms * 1000));
}

async function main() {
  const backend = await startWireBackend(HMAC_SECRET);
  const edge = await startBundledEdge({
    GPU_FUNCTION_URL: backend.url,
    GPU_HMAC_SECRET: HMAC_SECRET,
    ADMIN_TOKEN,
  });
  try {
    const admin = (body: unknown) =>
      fetch(`${edge.url}/admin/keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then(async (r) => {
        await expectOk(r, 'create key');
        return ((await r.json()) as { key: string }).key;
      });
    const key = await admin({ name: 'bench', limits: LIMITS });

    const t0 = performance.now();
    const tokenized = await fetch(`${edge.url}/v1/tokenize`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: PROMPT }),
    });
    await expectOk(tokenized, 'tokenize');
    const firstRequestMs = performance.now() - t0;
    const promptIds = ((await tokenized.json()) as { tokens: number[] }).tokens;

    const direct = async () => {
      const body = new TextEncoder().encode(JSON.stringify({ prompt_ids: promptIds, max_new_tokens: 1 }));
      const res = await fetch(`${backend.url}/v1/generate`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(await signRequest(HMAC_SECRET, 'POST', '/v1/generate', body)),
        },
        body,
      });
      await expectOk(res, 'direct');
      for await (const _ of readFrames<GenerateFrame>(res.body!));
    };
    const viaEdge =
      (apiKey: string, stream = false) =>
      async () => {
        const res = await fetch(`${edge.url}/v1/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: MODEL_ID, prompt: PROMPT, max_tokens: 1, stream }),
        });
        await expectOk(res, 'edge');
        await res.arrayBuffer();
      };

    // Floors for reading the figures: the local runtime's own cost of a request, and that plus
    // authentication (KV) and one limiter read.
    const get =
      (route: string, headers: Record<string, string> = {}) =>
      async () => {
        const res = await fetch(`${edge.url}${route}`, { headers });
        await expectOk(res, route);
        await res.arrayBuffer();
      };
    const paths = [
      get('/healthz'),
      get('/v1/models', { authorization: `Bearer ${key}` }),
      direct,
      viaEdge(key),
      viaEdge(key, true),
    ];
    await timedInterleaved(30, paths); // warm-up: connections, JIT, tokenizer, limiter object
    const [h, m, d, e, s] = (await timedInterleaved(REQUESTS, paths)).map(stats) as [
      Stats,
      Stats,
      Stats,
      Stats,
      Stats,
    ];
    const row = (name: string, x: Stats) =>
      `  ${name.padEnd(34)} p50 ${x.p50.toFixed(2).padStart(7)} ms   p99 ${x.p99.toFixed(2).padStart(7)} ms   mean ${x.mean.toFixed(2).padStart(7)} ms`;
    console.log(
      `\nlatency, ${REQUESTS} sequential requests per path, interleaved (prompt ${promptIds.length} tokens, max_tokens 1)`,
    );
    console.log(row('edge GET /healthz (runtime floor)', h));
    console.log(row('edge GET /v1/models (auth + limiter)', m));
    console.log(row('backend directly (signed)', d));
    console.log(row('through the edge (JSON)', e));
    console.log(row('through the edge (SSE)', s));
    const verdict = (v: number, target: number) => (v <= target ? 'within' : 'OVER');
    const addP50 = e.p50 - d.p50;
    const addP99 = e.p99 - d.p99;
    console.log(
      `  edge adds (JSON): p50 ${addP50.toFixed(2)} ms (${verdict(addP50, 5)} target 5 ms), p99 ${addP99.toFixed(2)} ms (${verdict(addP99, 20)} target 20 ms)`,
    );
    console.log(
      `  edge adds (SSE):  p50 ${(s.p50 - d.p50).toFixed(2)} ms, p99 ${(s.p99 - d.p99).toFixed(2)} ms`,
    );
    console.log(`  first request after start (loads the tokenizer): ${firstRequestMs.toFixed(1)} ms`);

    const throughput = async (keys: string[]) => {
      let next = 0;
      const t = performance.now();
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async (_, client) => {
          const call = viaEdge(keys[client % keys.length]!);
          while (next++ < THROUGHPUT_REQUESTS) await call();
        }),
      );
      return THROUGHPUT_REQUESTS / ((performance.now() - t) / 1000);
    };
    const manyKeys = await Promise.all(
      Array.from({ length: CONCURRENCY }, (_, i) => admin({ name: `bench-${i}`, limits: LIMITS })),
    );
    await throughput(manyKeys); // warm every key's limiter object
    const one = await throughput([key]);
    const many = await throughput(manyKeys);
    const directRate = await (async () => {
      let next = 0;
      const t = performance.now();
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next++ < THROUGHPUT_REQUESTS) await direct();
        }),
      );
      return THROUGHPUT_REQUESTS / ((performance.now() - t) / 1000);
    })();
    console.log(
      `\ncompletions through the edge: ${THROUGHPUT_REQUESTS} per run from ${CONCURRENCY} concurrent clients (max_tokens 1)`,
    );
    console.log(`  backend directly                    ${directRate.toFixed(0).padStart(6)} requests/s`);
    console.log(`  through the edge, one key           ${one.toFixed(0).padStart(6)} requests/s`);
    console.log(
      `  through the edge, ${String(CONCURRENCY).padEnd(2)} keys           ${many.toFixed(0).padStart(6)} requests/s`,
    );
    console.log(`  one key / many keys: ${(one / many).toFixed(2)}`);
  } finally {
    await edge.close();
    await backend.close();
  }
  await limiterThroughput();
  const cpu = await computeCost();
  console.log("\nthe edge's own computation per completion (same modules, in Node; no I/O)");
  console.log(
    `  p50 ${cpu.p50.toFixed(0)} µs   p99 ${cpu.p99.toFixed(0)} µs   mean ${cpu.mean.toFixed(0)} µs`,
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
