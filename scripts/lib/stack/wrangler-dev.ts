// The edge worker under `wrangler dev` on loopback, as in production but local: KV and Durable
// Object state persisted under the data folder (keys and usage survive restarts), secrets from
// a dotenv file, no telemetry and no network calls.
import path from 'node:path';
import { REPO_ROOT } from '../tokenizer-asset.ts';
import { type Level, type StackLog, stripAnsi } from './log.ts';
import { describeExit, ManagedProcess } from './managed-process.ts';
import { freePort, LOOPBACK } from './ports.ts';

export const QUIET_WRANGLER_ENV = {
  WRANGLER_SEND_METRICS: 'false',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  WRANGLER_HIDE_BANNER: 'true',
};

export interface EdgeOptions {
  port: number;
  /** Local KV and Durable Object storage. */
  persistDir: string;
  /** KEY=value file with the secrets (GPU_HMAC_SECRET, ADMIN_TOKEN). */
  secretsFile: string;
  /** Plain variables (GPU_FUNCTION_URL, timeouts). */
  vars: Record<string, string>;
  log: StackLog;
  timeoutMs?: number;
}

export interface LocalEdge {
  url: string;
  process: ManagedProcess;
}

/** Lines wrangler prints that say nothing to someone running the stack. */
const NOISE = [
  /^\s*$/,
  /^⎔ /,
  /Using secrets defined in/,
  /Your Worker has access to/,
  /^\s*(Binding|env\.|-{3,})/,
];

function levelOf(line: string): Level {
  if (/\bERROR\b|✘/.test(line)) return 'error';
  if (/\bWARNING\b|▲/.test(line)) return 'warn';
  return 'info';
}

export async function startEdge(o: EdgeOptions): Promise<LocalEdge> {
  const url = `http://${LOOPBACK}:${o.port}`;
  const args = [
    path.join(REPO_ROOT, 'node_modules/wrangler/bin/wrangler.js'),
    'dev',
    '--ip',
    LOOPBACK,
    '--port',
    String(o.port),
    '--inspector-port',
    String(await freePort()),
    '--persist-to',
    o.persistDir,
    '--env-file',
    o.secretsFile,
    '--show-interactive-dev-session=false',
    ...Object.entries(o.vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
  ];
  const proc = new ManagedProcess({
    command: process.execPath,
    args,
    cwd: REPO_ROOT,
    env: { ...process.env, ...QUIET_WRANGLER_ENV },
    onLine: (raw) => {
      const line = stripAnsi(raw).trimEnd();
      if (!NOISE.some((re) => re.test(line))) o.log.line('edge', line.trim(), levelOf(line));
    },
  });
  const timeoutMs = o.timeoutMs ?? 90_000;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!proc.running) {
      throw new Error(
        `wrangler dev exited while starting (${describeExit(await proc.exited)}); see [edge] above`,
      );
    }
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, process: proc };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  await proc.stop(3000);
  throw new Error(
    `wrangler dev did not answer ${url}/healthz within ${timeoutMs / 1000} s; see [edge] above`,
  );
}
