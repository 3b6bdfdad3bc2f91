// Scale to zero on one machine. The supervisor owns the GPU function's address
// (GPU_FUNCTION_URL): when a generation request arrives and no GPU function runs, it starts one
// and answers 503 with Retry-After meanwhile, which the edge's cold-start path retries; once the
// function listens, requests are proxied to it, streaming both ways without buffering. The
// function exits by itself after IDLE_TIMEOUT_S; the next request starts it again.
import { EventEmitter, once } from 'node:events';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import path from 'node:path';
import { ApiError, unavailable } from '../../../shared/src/errors.ts';
import { REPO_ROOT } from '../tokenizer-asset.ts';
import { formatServiceLine, type StackLog } from './log.ts';
import { describeExit, type ExitStatus, ManagedProcess } from './managed-process.ts';
import { freePort, LOOPBACK } from './ports.ts';

export type GpuState = 'stopped' | 'starting' | 'running' | 'stopping';

export interface SupervisorOptions {
  port: number;
  /** The GPU function's settings (secret, model, storage, idle timeout); HOST and PORT are ours. */
  env: Record<string, string>;
  log: StackLog;
  /** How long a stopping GPU function may drain before it is killed. */
  stopGraceMs?: number;
}

/** What the edge is told to wait while the function starts. */
const RETRY_AFTER_S = 1;
/** After a function failed to start, requests fail fast for this long instead of restarting it. */
const FAILED_START_HOLD_MS = 5000;
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
]);

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

function sendError(res: ServerResponse, error: ApiError): void {
  if (res.destroyed || res.writableEnded) return; // the client is gone
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(error.status, { 'content-type': 'application/json', ...error.headers });
  res.end(JSON.stringify(error.toJSON()));
}

export class GpuSupervisor extends EventEmitter<{ state: [GpuState]; exit: [ExitStatus] }> {
  state: GpuState = 'stopped';
  /** How many times a GPU function was started. */
  starts = 0;
  private readonly o: SupervisorOptions;
  private server: Server | null = null;
  private child: ManagedProcess | null = null;
  private childPort = 0;
  private restartWanted = false;
  private failedStart: { at: number; reason: string } | null = null;
  private closing = false;
  private boundPort = 0;

  constructor(o: SupervisorOptions) {
    super();
    this.o = o;
  }

  get url(): string {
    return `http://${LOOPBACK}:${this.boundPort}`;
  }

  /** The running GPU function's process group, or null. */
  get pid(): number | null {
    return this.child?.running ? this.child.pid : null;
  }

  async listen(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    server.listen(this.o.port, LOOPBACK);
    await once(server, 'listening');
    this.boundPort = (server.address() as { port: number }).port;
    this.server = server;
  }

  /** Resolves when the state becomes `state` (at once if it is). */
  async waitFor(state: GpuState, timeoutMs: number): Promise<void> {
    if (this.state === state) return;
    const signal = AbortSignal.timeout(timeoutMs);
    for (;;) {
      const [next] = (await once(this, 'state', { signal }).catch(() => {
        throw new Error(
          `the GPU function did not become ${state} within ${timeoutMs} ms (it is ${this.state})`,
        );
      })) as [GpuState];
      if (next === state) return;
    }
  }

  /** Signals the running GPU function (tests use it to kill one in the middle of a stream). */
  signal(signal: NodeJS.Signals): void {
    this.child?.signal(signal);
  }

  /** Stops accepting requests, then lets the GPU function drain and exit. */
  async close(): Promise<void> {
    this.closing = true;
    const server = this.server;
    server?.close();
    server?.closeIdleConnections();
    const child = this.child;
    if (child?.running) {
      this.log(`stopping the GPU function (pid ${child.pid})`);
      await child.stop(this.o.stopGraceMs ?? 10_000);
    }
    server?.closeAllConnections();
  }

  private log(text: string, level: 'info' | 'warn' | 'error' = 'info'): void {
    this.o.log.line('supervisor', text, level);
  }

  private setState(state: GpuState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const route = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && route === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', gpu_function: this.state }));
      return;
    }
    if (this.state === 'running') {
      this.proxy(req, res);
      return;
    }
    // Drain the body we will not forward, so the connection stays usable.
    req.resume();
    const wantsGeneration = req.method === 'POST' && route === '/v1/generate';
    if (!wantsGeneration) {
      sendError(res, unavailable(`The GPU function is ${this.state}.`, RETRY_AFTER_S));
      return;
    }
    if (this.closing) {
      sendError(res, unavailable('The local stack is shutting down.', RETRY_AFTER_S));
      return;
    }
    if (this.failedStart && Date.now() - this.failedStart.at < FAILED_START_HOLD_MS) {
      sendError(
        res,
        new ApiError(502, 'server_error', `The GPU function failed to start: ${this.failedStart.reason}.`, {
          code: 'upstream_error',
        }),
      );
      return;
    }
    if (this.state === 'stopped') void this.startChild();
    else if (this.state === 'stopping') this.restartWanted = true;
    sendError(res, unavailable('The GPU function is starting; retry shortly.', RETRY_AFTER_S));
  }

  private proxy(req: IncomingMessage, res: ServerResponse): void {
    const upstream = httpRequest({
      host: LOOPBACK,
      port: this.childPort,
      method: req.method,
      path: req.url,
      headers: forwardable(req.headers),
      agent: false,
    });
    // The client went away: stop the generation upstream too.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.on('error', () => {
      // Refused (the function just exited) before any answer: the edge retries a 503.
      if (!res.headersSent) sendError(res, unavailable('The GPU function is restarting.', RETRY_AFTER_S));
      else res.destroy();
    });
    upstream.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, forwardable(answer.headers));
      res.flushHeaders();
      answer.pipe(res);
      // Cut off in the middle (the function died): break the client's stream as well, so it
      // sees a failure and not a clean end.
      answer.on('close', () => {
        if (!answer.complete) res.destroy();
      });
    });
    req.pipe(upstream);
  }

  private async startChild(): Promise<void> {
    this.setState('starting');
    this.restartWanted = false;
    this.starts++;
    const port = await freePort();
    this.childPort = port;
    const t0 = performance.now();
    const env = { ...process.env, ...this.o.env, HOST: LOOPBACK, PORT: String(port) };
    const child = new ManagedProcess({
      command: process.execPath,
      args: [path.join(REPO_ROOT, 'gpu-function/src/main.ts')],
      cwd: REPO_ROOT,
      env,
      onLine: (line) => this.onChildLine(child, line, t0),
    });
    this.child = child;
    this.log(`starting the GPU function (pid ${child.pid}, port ${port})`);
    const status = await child.exited;
    const wasStarting = this.state === 'starting';
    this.child = null;
    this.emit('exit', status);
    if (this.closing) {
      this.log(`the GPU function stopped (${describeExit(status)})`);
    } else if (wasStarting) {
      this.failedStart = { at: Date.now(), reason: describeExit(status) };
      this.log(
        `the GPU function exited while starting (${describeExit(status)}); see its log above`,
        'error',
      );
    } else if (status.code === 0) {
      this.log('the GPU function exited; the next request starts it again');
    } else {
      this.log(
        `the GPU function stopped (${describeExit(status)}); the next request starts it again`,
        'warn',
      );
    }
    this.setState('stopped');
    if (this.restartWanted && !this.closing) void this.startChild();
  }

  private onChildLine(child: ManagedProcess, line: string, t0: number): void {
    const { text, level, event } = formatServiceLine(line);
    if (event !== 'settings') this.o.log.line('gpu', text, level);
    if (this.child !== child) return;
    if (event === 'listening' && this.state === 'starting') {
      this.failedStart = null;
      this.log(`the GPU function listens (${Math.round(performance.now() - t0)} ms after start)`);
      this.setState('running');
    } else if (event === 'lifecycle.idle_exit' || event === 'lifecycle.draining') {
      this.setState('stopping');
    }
  }
}
