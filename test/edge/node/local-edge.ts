// The edge on loopback, from Node, bundled by wrangler itself (Data module rule included):
//   startLocalEdge    under `wrangler dev`, as `npm start` runs it (the CLI test);
//   startBundledEdge  the `wrangler deploy` bundle in Miniflare, without wrangler dev's proxy
//                     hop in front (bench:edge: closest to production locally).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { convertV4MiniflareOptions, Miniflare } from 'miniflare';
import { freePort } from '../../../scripts/lib/stack/ports.ts';
import {
  COMPILED_TOKENIZER_PATH,
  ensureCompiledTokenizer,
  findTokenizerModel,
  REPO_ROOT,
} from '../../../scripts/lib/tokenizer-asset.ts';

/**
 * Writes the compiled tokenizer the worker bundles; false when there is no tokenizer model to
 * compile it from (../shared absent) and no compiled copy either, so tests can skip.
 */
export async function prepareTokenizer(): Promise<boolean> {
  try {
    findTokenizerModel();
  } catch {
    return existsSync(COMPILED_TOKENIZER_PATH);
  }
  await ensureCompiledTokenizer();
  return true;
}

export interface LocalEdge {
  url: string;
  close(): Promise<void>;
}

async function waitUntilHealthy(url: string, child: ChildProcess, timeoutMs: number, output: () => string) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited (${child.exitCode}):\n${output()}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`wrangler dev did not become healthy within ${timeoutMs} ms:\n${output()}`);
}

const QUIET_WRANGLER = {
  WRANGLER_SEND_METRICS: 'false',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  WRANGLER_HIDE_BANNER: 'true',
};
const WRANGLER = path.join(REPO_ROOT, 'node_modules/wrangler/bin/wrangler.js');

/** Starts `wrangler dev` with the given vars (secrets included) and fresh local storage. */
export async function startLocalEdge(vars: Record<string, string>, timeoutMs = 60_000): Promise<LocalEdge> {
  if (!(await prepareTokenizer()))
    throw new Error(`no tokenizer: ${COMPILED_TOKENIZER_PATH} cannot be built`);
  const [port, inspectorPort] = [await freePort(), await freePort()];
  const persist = mkdtempSync(path.join(os.tmpdir(), 'jslm-edge-'));
  const args = [
    WRANGLER,
    'dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--inspector-port',
    String(inspectorPort),
    '--persist-to',
    persist,
    '--log-level',
    'warn',
    '--show-interactive-dev-session=false',
    ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
  ];
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...QUIET_WRANGLER },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  const collect = (b: Buffer) => {
    output = (output + b.toString()).slice(-20_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const url = `http://127.0.0.1:${port}`;

  const close = async () => {
    if (child.exitCode === null && child.pid) {
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(-child.pid, 'SIGTERM'); // wrangler and the workerd it started
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
    }
    rmSync(persist, { recursive: true, force: true });
  };
  try {
    await waitUntilHealthy(url, child, timeoutMs, () => output);
  } catch (err) {
    await close();
    throw err;
  }
  return { url, close };
}

function wranglerCompatibilityDate(): string {
  const toml = readFileSync(path.join(REPO_ROOT, 'wrangler.toml'), 'utf8');
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
  if (!date) throw new Error('wrangler.toml has no compatibility_date');
  return date;
}

/**
 * A worker as `wrangler deploy` would upload it (wrangler.toml's bindings and rules; `entry`
 * replaces its main), run by Miniflare with in-memory storage.
 */
export async function startBundledEdge(vars: Record<string, string>, entry?: string): Promise<LocalEdge> {
  if (!(await prepareTokenizer()))
    throw new Error(`no tokenizer: ${COMPILED_TOKENIZER_PATH} cannot be built`);
  const outdir = mkdtempSync(path.join(os.tmpdir(), 'jslm-edge-bundle-'));
  const build = spawnSync(
    process.execPath,
    [WRANGLER, 'deploy', '--dry-run', '--outdir', outdir, ...(entry ? [entry] : [])],
    { cwd: REPO_ROOT, env: { ...process.env, ...QUIET_WRANGLER }, encoding: 'utf8' },
  );
  if (build.status !== 0)
    throw new Error(`wrangler deploy --dry-run failed:\n${build.stdout}${build.stderr}`);
  const files = readdirSync(outdir);
  const main = files.find((f) => f.endsWith('.js'));
  if (!main) throw new Error(`no script in ${outdir}: ${files.join(', ')}`);
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: '127.0.0.1',
      port: 0,
      compatibilityDate: wranglerCompatibilityDate(),
      modulesRoot: outdir,
      modules: [
        { type: 'ESModule', path: path.join(outdir, main) },
        ...files
          .filter((f) => f.endsWith('.bin'))
          .map((f) => ({ type: 'Data' as const, path: path.join(outdir, f) })),
      ],
      kvNamespaces: ['API_KEYS'],
      durableObjects: { KEY_LIMITER: { className: 'KeyLimiter', useSQLite: true } },
      bindings: vars,
    }),
  );
  const url = (await mf.ready).origin;
  return {
    url,
    async close() {
      await mf.dispose();
      rmSync(outdir, { recursive: true, force: true });
    },
  };
}
