// Bundles the edge Worker exactly as `wrangler deploy` does (with --dry-run nothing is uploaded)
// and measures what the platform limits: the compressed upload size and the startup cost.
//
//   node infra/worker-bundle.ts      bundle into a temporary folder and print the figures

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Cloudflare Workers limits (developers.cloudflare.com/workers/platform/limits). */
export const WORKER_LIMITS = {
  /** Upload size after gzip, Workers Free and Workers Paid. */
  freeGzipBytes: 3 * 2 ** 20,
  paidGzipBytes: 10 * 2 ** 20,
  /** Upload size before compression. */
  rawBytes: 64 * 2 ** 20,
  /** Source maps are uploaded beside the Worker and limited on their own (gzipped). */
  sourceMapGzipBytes: 15 * 2 ** 20,
  /** Parsing and running the global scope at startup. */
  startupMs: 1000,
} as const;

const QUIET_WRANGLER = {
  WRANGLER_SEND_METRICS: 'false',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  WRANGLER_HIDE_BANNER: 'true',
};

export interface BundleResult {
  ok: boolean;
  /** wrangler's stdout and stderr. */
  output: string;
}

/** `wrangler deploy --dry-run --outdir DIR` from the repository root, with wrangler.toml. */
export function bundleWorker(outdir: string): BundleResult {
  const r = spawnSync(
    process.execPath,
    [join(REPO_ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', outdir],
    { cwd: REPO_ROOT, env: { ...process.env, ...QUIET_WRANGLER }, encoding: 'utf8', timeout: 120_000 },
  );
  return {
    ok: r.status === 0,
    output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`,
  };
}

/** The file a failed bundle could not find (a generated asset such as the compiled tokenizer). */
export function missingModule(output: string): string | undefined {
  return /Could not resolve "([^"]+)"/.exec(output)?.[1];
}

export interface BundleSizes {
  modules: Array<{ name: string; bytes: number }>;
  rawBytes: number;
  /** gzip of all modules together, the way wrangler reports (and Cloudflare limits) it. */
  gzipBytes: number;
  sourceMapBytes: number;
  sourceMapGzipBytes: number;
  /** What wrangler itself printed ("Total Upload: X KiB / gzip: Y KiB"), when found. */
  wranglerReport?: { rawKiB: number; gzipKiB: number };
}

export function bundleSizes(outdir: string, wranglerOutput = ''): BundleSizes {
  const files = readdirSync(outdir).filter((f) => f !== 'README.md');
  const read = (names: string[]) => names.map((n) => readFileSync(join(outdir, n)));
  const moduleNames = files.filter((f) => !f.endsWith('.map'));
  const mapNames = files.filter((f) => f.endsWith('.map'));
  const modules = read(moduleNames);
  const maps = read(mapNames);
  const total = (bufs: Buffer[]) => bufs.reduce((s, b) => s + b.length, 0);
  const report = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(wranglerOutput);
  return {
    modules: moduleNames.map((name, i) => ({ name, bytes: modules[i]!.length })),
    rawBytes: total(modules),
    gzipBytes: gzipSync(Buffer.concat(modules)).length,
    sourceMapBytes: total(maps),
    sourceMapGzipBytes: maps.length > 0 ? gzipSync(Buffer.concat(maps)).length : 0,
    ...(report ? { wranglerReport: { rawKiB: Number(report[1]), gzipKiB: Number(report[2]) } } : {}),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Top-level evaluation of the bundle in Node's V8 (the engine workerd embeds): milliseconds to
 * import index.js, in a fresh process each run, median of `runs`. `cloudflare:workers` is replaced
 * by empty base classes and Data/Text/Wasm modules are read from the folder, as workerd would
 * provide them. Parsing and evaluating the global scope is what the 1 s startup limit counts.
 */
export function nodeEvaluationMs(outdir: string, runs = 5): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--evaluate', outdir], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    const ms = Number(/^evaluate-ms (\S+)$/m.exec(r.stdout ?? '')?.[1]);
    if (r.status !== 0 || !Number.isFinite(ms)) {
      throw new Error(`evaluating the bundle failed:\n${r.stdout}${r.stderr}`);
    }
    times.push(ms);
  }
  return median(times);
}

const CLOUDFLARE_STUB = `
export class DurableObject { constructor(ctx, env) { this.ctx = ctx; this.env = env; } }
export class WorkerEntrypoint { constructor(ctx, env) { this.ctx = ctx; this.env = env; } }
export class WorkflowEntrypoint { constructor(ctx, env) { this.ctx = ctx; this.env = env; } }
export class RpcTarget {}
export const env = {};
`;

/** Runs in the child process: hooks the module loader, then times the import. */
async function evaluateInThisProcess(outdir: string): Promise<void> {
  const readExpr = (url: string) => `readFileSync(new URL(${JSON.stringify(url)}))`;
  registerHooks({
    resolve(specifier, context, next) {
      if (specifier.startsWith('cloudflare:')) {
        return { url: `data:text/javascript,${encodeURIComponent(CLOUDFLARE_STUB)}`, shortCircuit: true };
      }
      return next(specifier, context);
    },
    load(url, context, next) {
      const prelude = `import { readFileSync } from 'node:fs'; const b = ${readExpr(url)};`;
      if (/\.(bin)$/.test(url)) {
        const source = `${prelude} export default b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);`;
        return { format: 'module', source, shortCircuit: true };
      }
      if (/\.(txt|html|sql)$/.test(url)) {
        return {
          format: 'module',
          source: `${prelude} export default b.toString('utf8');`,
          shortCircuit: true,
        };
      }
      if (/\.wasm$/.test(url)) {
        return {
          format: 'module',
          source: `${prelude} export default new WebAssembly.Module(b);`,
          shortCircuit: true,
        };
      }
      return next(url, context);
    },
  });
  const entry = pathToFileURL(join(outdir, 'index.js')).href;
  // Warm the module loader first, so its own start-up is not counted against the bundle.
  const warmUp: string = 'data:text/javascript,export default 1';
  await import(warmUp);
  const t0 = performance.now();
  await import(entry);
  process.stdout.write(`evaluate-ms ${(performance.now() - t0).toFixed(2)}\n`);
}

type ModuleType = 'ESModule' | 'Data' | 'Text' | 'CompiledWasm';

/** The bundle's modules for workerd, typed the way wrangler.toml's rules type them; entry first. */
function bundleModules(outdir: string): Array<{ type: ModuleType; path: string }> {
  const typeOf = (f: string): ModuleType =>
    f.endsWith('.bin')
      ? 'Data'
      : f.endsWith('.wasm')
        ? 'CompiledWasm'
        : /\.(txt|html|sql)$/.test(f)
          ? 'Text'
          : 'ESModule';
  const files = readdirSync(outdir).filter(
    (f) => f !== 'README.md' && !f.endsWith('.map') && f !== 'index.js',
  );
  return [
    { type: 'ESModule', path: join(outdir, 'index.js') },
    ...files.map((f) => ({ type: typeOf(f), path: join(outdir, f) })),
  ];
}

export interface WorkerdStartup {
  /** Median time until workerd serves the bundle, and an empty Worker with the same bindings, from cold. */
  bundleReadyMs: number;
  /** Only when measured with a baseline. */
  baselineReadyMs?: number;
  /** The bundle's share: parsing, global scope, bindings. Noisy: workerd's own start dominates. */
  differenceMs?: number;
  /** Status and time of the first request (GET /healthz) after startup. */
  firstRequest: { status: number; ms: number };
}

/** Starts the bundle in workerd (via Miniflare, with wrangler.toml's bindings) `runs` times. */
export async function workerdStartup(outdir: string, runs = 1, withBaseline = true): Promise<WorkerdStartup> {
  const { unstable_getMiniflareWorkerOptions } = await import('wrangler');
  const { Miniflare, convertV4MiniflareOptions } = await import('miniflare');
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(REPO_ROOT, 'wrangler.toml'));
  // Modules are listed explicitly (Miniflare 5 does not take v4 module rules).
  const { modulesRules: _rules, ...options } = workerOptions as typeof workerOptions & {
    modulesRules?: unknown;
  };
  const secrets = { GPU_HMAC_SECRET: 'startup-measurement', ADMIN_TOKEN: 'startup-measurement' };
  const bundle = convertV4MiniflareOptions({
    ...options,
    name: 'edge',
    modulesRoot: outdir,
    modules: bundleModules(outdir),
    bindings: { ...(options.bindings ?? {}), ...secrets },
  } as Parameters<typeof convertV4MiniflareOptions>[0]);
  // The baseline has the same bindings (KV, Durable Objects with SQLite, vars) and an empty
  // Durable Object class for each, so the difference is the bundle's own share.
  const classes = Object.values(options.durableObjects ?? {}).map((d) =>
    typeof d === 'string' ? d : (d as { className: string }).className,
  );
  const baseline = convertV4MiniflareOptions({
    ...options,
    name: 'edge',
    modules: true,
    script: [
      "import { DurableObject } from 'cloudflare:workers';",
      ...classes.map((c) => `export class ${c} extends DurableObject {}`),
      'export default { fetch() { return new Response("ok"); } };',
    ].join('\n'),
    bindings: { ...(options.bindings ?? {}), ...secrets },
  } as Parameters<typeof convertV4MiniflareOptions>[0]);

  const start = async (config: ReturnType<typeof convertV4MiniflareOptions>, probe: boolean) => {
    const t0 = performance.now();
    const mf = new Miniflare(config);
    try {
      await mf.ready;
      const readyMs = performance.now() - t0;
      if (!probe) return { readyMs };
      const t1 = performance.now();
      const res = await mf.dispatchFetch('http://localhost/healthz');
      await res.arrayBuffer();
      return { readyMs, firstRequest: { status: res.status, ms: performance.now() - t1 } };
    } finally {
      await mf.dispose();
    }
  };

  const bundleTimes: number[] = [];
  const baselineTimes: number[] = [];
  let firstRequest = { status: 0, ms: 0 };
  // The first start in a process also loads Miniflare's own code: run one and discard it.
  if (withBaseline) await start(baseline, false);
  for (let i = 0; i < runs; i++) {
    if (withBaseline) baselineTimes.push((await start(baseline, false)).readyMs);
    const b = await start(bundle, i === 0);
    bundleTimes.push(b.readyMs);
    if (b.firstRequest) firstRequest = b.firstRequest;
  }
  const bundleReadyMs = median(bundleTimes);
  if (!withBaseline) return { bundleReadyMs, firstRequest };
  const baselineReadyMs = median(baselineTimes);
  return { bundleReadyMs, baselineReadyMs, differenceMs: bundleReadyMs - baselineReadyMs, firstRequest };
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--evaluate' && argv[1]) {
    await evaluateInThisProcess(argv[1]);
    return 0;
  }
  const outdir = mkdtempSync(join(tmpdir(), 'worker-bundle-'));
  try {
    const result = bundleWorker(outdir);
    if (!result.ok) {
      process.stderr.write(result.output);
      return 1;
    }
    const s = bundleSizes(outdir, result.output);
    const lines = [
      `modules: ${s.modules.map((m) => `${m.name} ${kib(m.bytes)}`).join(', ')}`,
      `upload: ${kib(s.rawBytes)} raw, ${kib(s.gzipBytes)} gzip ` +
        `(limit ${kib(WORKER_LIMITS.freeGzipBytes)} free / ${kib(WORKER_LIMITS.paidGzipBytes)} paid)`,
      `source maps: ${kib(s.sourceMapBytes)} raw, ${kib(s.sourceMapGzipBytes)} gzip`,
      `global scope evaluation (Node, median of 5): ${nodeEvaluationMs(outdir).toFixed(1)} ms ` +
        `(limit ${WORKER_LIMITS.startupMs} ms)`,
    ];
    const w = await workerdStartup(outdir, 5);
    lines.push(
      `workerd ready (median of 5): bundle ${w.bundleReadyMs.toFixed(0)} ms, empty Worker, same bindings ` +
        `${w.baselineReadyMs?.toFixed(0)} ms, difference ${w.differenceMs?.toFixed(0)} ms; first ` +
        `GET /healthz ${w.firstRequest.status} in ${w.firstRequest.ms.toFixed(1)} ms`,
    );
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
