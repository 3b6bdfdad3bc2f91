// npm run bench:serve [-- --levels 1,2,4,8,16 --requests 2 --tokens 64 --prompt 16 --skip-edge]
//
// Serving under concurrent load, through real HTTP:
//   1. the GPU function's own API (signed requests) on the ~1B random model of bench:model,
//   2. `npm start`'s stack (edge + GPU function + object storage) with the demo model.
// At each concurrency c, c clients each send `--requests` streamed requests one after another
// (a closed loop). Printed per level: aggregate generated tokens/s, time to first token and
// the interval between streamed chunks (p50/p99), each next to concurrency 1 of the same run.

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MODEL_ID } from '../../shared/src/model-facts.ts';
import type { GenerateFrame } from '../../shared/src/protocol/generate.ts';
import { readFrames } from '../../shared/src/protocol/ndjson.ts';
import { signRequest } from '../../shared/src/signing.ts';
import { memoryLog } from '../lib/stack/log.ts';
import { freePort, waitForPort } from '../lib/stack/ports.ts';
import { startStack } from '../lib/stack/stack.ts';
import { prepareBenchModel } from './lib/bench-model.ts';

const SECRET = 'bench-serve-secret-of-at-least-32-bytes!';

interface RequestStats {
  tokens: number;
  /** Send to the first generated text. */
  ttftMs: number;
  /** Between consecutive chunks of generated text. */
  intervalsMs: number[];
}

interface LevelStats {
  concurrency: number;
  tokensPerS: number;
  ttft: number[];
  intervals: number[];
}

type SendOne = (client: number, request: number) => Promise<RequestStats>;

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};
const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');

/** Times one stream: `chunks` yields once per chunk of generated text and returns its token count. */
async function timeStream(start: number, chunks: AsyncGenerator<void, number>): Promise<RequestStats> {
  let first = 0;
  let last = 0;
  const intervalsMs: number[] = [];
  for (;;) {
    const step = await chunks.next();
    if (step.done) {
      return { tokens: step.value, ttftMs: first - start, intervalsMs };
    }
    const now = performance.now();
    if (!first) first = now;
    else intervalsMs.push(now - last);
    last = now;
  }
}

async function measureLevel(concurrency: number, perClient: number, send: SendOne): Promise<LevelStats> {
  const t0 = performance.now();
  const results = await Promise.all(
    Array.from({ length: concurrency }, async (_, c) => {
      const out: RequestStats[] = [];
      for (let r = 0; r < perClient; r++) out.push(await send(c, r));
      return out;
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const all = results.flat();
  return {
    concurrency,
    tokensPerS: all.reduce((n, r) => n + r.tokens, 0) / seconds,
    ttft: all.map((r) => r.ttftMs),
    intervals: all.flatMap((r) => r.intervalsMs),
  };
}

function printTable(title: string, levels: LevelStats[]): void {
  const base = levels[0] as LevelStats;
  console.log(`\n${title}`);
  console.log(
    '  conc | tokens/s (x c=1) | first token p50 / p99 ms (x c=1 p50) | chunk interval p50 / p99 ms',
  );
  for (const l of levels) {
    console.log(
      `  ${String(l.concurrency).padStart(4)} | ${fmt(l.tokensPerS, 2).padStart(8)} (${fmt(l.tokensPerS / base.tokensPerS, 2)}x) | ` +
        `${fmt(pct(l.ttft, 50)).padStart(6)} / ${fmt(pct(l.ttft, 99)).padStart(6)} (${fmt(pct(l.ttft, 50) / pct(base.ttft, 50), 2)}x) | ` +
        `${fmt(pct(l.intervals, 50)).padStart(5)} / ${fmt(pct(l.intervals, 99))}`,
    );
  }
}

/** A prompt of `n` ids, different per client and request (nothing is shared between them). */
const promptOf = (n: number, client: number, request: number) =>
  Array.from({ length: n }, (_, i) => 100 + ((client * 7919 + request * 104729 + i * 31) % 60000));

async function benchGpuFunction(o: Options): Promise<LevelStats[]> {
  const modelDir = await prepareBenchModel();
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['gpu-function/src/main.ts'], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      MODEL_URI: modelDir,
      GPU_HMAC_SECRET: SECRET,
      PRELOAD: '1',
      IDLE_TIMEOUT_S: '0',
      QUEUE_MAX: '1000',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let ready: () => void = () => {};
  const loaded = new Promise<void>((r) => {
    ready = r;
  });
  let settings = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    for (const line of text.split('\n')) {
      if (line.includes('"model.ready"')) ready();
      if (line.includes('"engine.opened"')) settings = line;
    }
  });
  try {
    await waitForPort(port, 60_000);
    process.stderr.write('loading the ~1B model in the GPU function...\n');
    await loaded;
    console.log(`GPU function: ${settings.trim()}`);
    const url = `http://127.0.0.1:${port}/v1/generate`;
    const send: SendOne = async (client, request) => {
      const body = new TextEncoder().encode(
        JSON.stringify({
          prompts: [promptOf(o.prompt, client, request)],
          max_new_tokens: o.tokens,
          temperature: 1,
          seed: client * 1000 + request,
          key_id: `client-${client}`,
        }),
      );
      const start = performance.now();
      const res = await fetch(url, {
        method: 'POST',
        body,
        headers: await signRequest(SECRET, 'POST', url, body),
      });
      if (res.status !== 200) throw new Error(`generate answered ${res.status}: ${await res.text()}`);
      return timeStream(
        start,
        (async function* () {
          let tokens = 0;
          for await (const f of readFrames<GenerateFrame>(res.body!)) {
            if (f.type === 'tokens') {
              tokens += f.ids.length;
              yield;
            } else if (f.type === 'done' && f.finish_reason === 'error') throw new Error(f.error?.message);
          }
          return tokens;
        })(),
      );
    };
    return await runLevels(o, send);
  } finally {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
}

async function benchEdge(o: Options): Promise<LevelStats[]> {
  const dataDir = path.join(os.tmpdir(), `jslm-bench-serve-${process.pid}`);
  const log = memoryLog();
  process.stderr.write('starting the local stack (edge, GPU function, object storage)...\n');
  const stack = await startStack({
    dataDir,
    secretsFile: path.join(dataDir, 'dev.vars'),
    ports: { edge: 0, gpu: 0, s3: 0 },
    idleTimeoutS: 600,
    log,
    gpuEnv: { QUEUE_MAX: '1000' },
  });
  try {
    // A key with room for the whole run (the local key has the default limits).
    const created = await fetch(`${stack.edgeUrl}/admin/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'bench-serve',
        limits: { requests_per_minute: 100_000, tokens_per_minute: 100_000_000, concurrent_requests: 64 },
      }),
    });
    const { key } = (await created.json()) as { key: string };
    const send: SendOne = async (client, request) => {
      const start = performance.now();
      const res = await fetch(`${stack.edgeUrl}/v1/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: MODEL_ID,
          prompt: promptOf(o.prompt, client, request),
          max_tokens: o.tokens,
          temperature: 1,
          seed: client * 1000 + request,
          stream: true,
          stream_options: { include_usage: true },
        }),
      });
      if (res.status !== 200) throw new Error(`completions answered ${res.status}: ${await res.text()}`);
      return timeStream(
        start,
        (async function* () {
          let tokens = 0;
          const decoder = new TextDecoder();
          let buffer = '';
          const reader = (res.body as ReadableStream<Uint8Array>).getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            buffer += decoder.decode(value, { stream: true });
            let at = buffer.indexOf('\n\n');
            while (at >= 0) {
              const event = buffer.slice(0, at);
              buffer = buffer.slice(at + 2);
              at = buffer.indexOf('\n\n');
              const data = event.startsWith('data: ') ? event.slice(6) : '';
              if (!data || data === '[DONE]') continue;
              const chunk = JSON.parse(data) as {
                choices?: { text: string }[];
                usage?: { completion_tokens: number };
              };
              if (chunk.usage) tokens = chunk.usage.completion_tokens;
              if (chunk.choices?.some((c) => c.text.length > 0)) yield;
            }
          }
          return tokens;
        })(),
      );
    };
    return await runLevels(o, send);
  } catch (err) {
    process.stderr.write(`the stack logged:\n${log.text().slice(-4000)}\n`);
    throw err;
  } finally {
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function runLevels(o: Options, send: SendOne): Promise<LevelStats[]> {
  await send(999, 0); // warm-up: first runs pay for allocations
  const levels: LevelStats[] = [];
  for (const c of o.levels) {
    process.stderr.write(`  concurrency ${c}...\n`);
    levels.push(await measureLevel(c, o.requests, send));
  }
  return levels;
}

interface Options {
  levels: number[];
  requests: number;
  tokens: number;
  prompt: number;
  skipEdge: boolean;
  skipGpu: boolean;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      levels: { type: 'string', default: '1,2,4,8,16' },
      requests: { type: 'string', default: '2' },
      tokens: { type: 'string', default: '64' },
      prompt: { type: 'string', default: '16' },
      'skip-edge': { type: 'boolean', default: false },
      'skip-gpu-function': { type: 'boolean', default: false },
    },
  });
  const o: Options = {
    levels: values.levels.split(',').map(Number),
    requests: Number(values.requests),
    tokens: Number(values.tokens),
    prompt: Number(values.prompt),
    skipEdge: values['skip-edge'],
    skipGpu: values['skip-gpu-function'],
  };
  if (o.levels[0] !== 1 || o.levels.some((c) => !(Number.isInteger(c) && c >= 1))) {
    throw new Error('--levels must start with 1 (the baseline) and hold positive integers');
  }
  console.log(
    `bench:serve on ${os.cpus()[0]?.model ?? '?'} x ${os.availableParallelism()}, load ${os.loadavg()[0]?.toFixed(2)}: ` +
      `${o.requests} requests per client, prompt ${o.prompt} tokens, ${o.tokens} generated (temperature 1)`,
  );
  if (!o.skipGpu)
    printTable(
      'GPU function (signed HTTP), ~1B random model, float32 on the CPU:',
      await benchGpuFunction(o),
    );
  if (!o.skipEdge) printTable("npm start's edge (SSE), demo model:", await benchEdge(o));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
