// The real GPU function as a child process (`node gpu-function/src/main.ts`), with its JSON log
// lines collected, and a client that signs requests the way the edge does.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { freePort } from '../../../../scripts/lib/stack/ports.ts';
import type { GenerateFrame } from '../../../../shared/src/protocol/generate.ts';
import { readFrames } from '../../../../shared/src/protocol/ndjson.ts';
import { signRequest } from '../../../../shared/src/signing.ts';

export const TEST_SECRET = 'gpu-function-test-secret-of-32-bytes-or-more';

export interface LogLine {
  time: string;
  level: string;
  event: string;
  [field: string]: unknown;
}

export interface GenerateResult {
  status: number;
  headers: Headers;
  frames: GenerateFrame[];
  /** The JSON error body when status is not 200. */
  error?: { error: { message: string; code: string | null; type: string; param: string | null } };
}

export class ServiceProcess {
  readonly port: number;
  readonly child: ChildProcess;
  readonly logs: LogLine[] = [];
  /** Raw stdout+stderr, to check that secrets never appear. */
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly listeners = new Set<() => void>();

  private constructor(port: number, child: ChildProcess) {
    this.port = port;
    this.child = child;
    this.exited = once(child, 'exit').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      this.output += `${line}\n`;
      try {
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        // not a log line
      }
      for (const l of this.listeners) l();
    });
    child.stderr!.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
  }

  /** Starts the service and waits until it listens. */
  static async start(env: Record<string, string>): Promise<ServiceProcess> {
    const port = await freePort();
    const child = spawn(process.execPath, ['gpu-function/src/main.ts'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOST: '127.0.0.1',
        PORT: String(port),
        GPU_HMAC_SECRET: TEST_SECRET,
        HEARTBEAT_MS: '200',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const svc = new ServiceProcess(port, child);
    await Promise.race([
      svc.waitForLog('listening'),
      svc.exited.then((e) => {
        throw new Error(`service exited before listening (${JSON.stringify(e)}):\n${svc.output}`);
      }),
    ]);
    return svc;
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  url(path: string): string {
    return `${this.base}${path}`;
  }

  /** A GET signed the way the edge signs (/readyz and /metrics require it). */
  async signedGet(path: string): Promise<Response> {
    const url = this.url(path);
    return fetch(url, { headers: await signRequest(TEST_SECRET, 'GET', url, new Uint8Array(0)) });
  }

  events(name: string): LogLine[] {
    return this.logs.filter((l) => l.event === name);
  }

  /** Resolves with the first log line of this event (matching `where`), past or future. */
  waitForLog(
    event: string,
    where: (l: LogLine) => boolean = () => true,
    timeoutMs = 30_000,
  ): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.logs.find((l) => l.event === event && where(l));
        if (!hit) return false;
        this.listeners.delete(check);
        clearTimeout(timer);
        resolve(hit);
        return true;
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`no '${event}' log line within ${timeoutMs} ms; output:\n${this.output}`));
      }, timeoutMs);
      if (!check()) this.listeners.add(check);
    });
  }

  /** Sends a signed POST /v1/generate and reads the whole stream. */
  async generate(
    body: unknown,
    opts: {
      headers?: Record<string, string>;
      signal?: AbortSignal;
      onFrame?: (f: GenerateFrame) => void;
    } = {},
  ): Promise<GenerateResult> {
    const bytes = new TextEncoder().encode(JSON.stringify(body));
    const headers = opts.headers ?? (await signRequest(TEST_SECRET, 'POST', this.url('/v1/generate'), bytes));
    const res = await fetch(`${this.base}/v1/generate`, {
      method: 'POST',
      body: bytes,
      headers: { 'content-type': 'application/json', ...headers },
      signal: opts.signal,
    });
    if (res.status !== 200) {
      return { status: res.status, headers: res.headers, frames: [], error: await res.json() };
    }
    const frames: GenerateFrame[] = [];
    for await (const f of readFrames<GenerateFrame>(res.body!)) {
      frames.push(f);
      opts.onFrame?.(f);
    }
    return { status: res.status, headers: res.headers, frames };
  }

  async metrics(): Promise<Map<string, number>> {
    const text = await (await this.signedGet('/metrics')).text();
    const out = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line.startsWith('#') || line.trim() === '') continue;
      const at = line.lastIndexOf(' ');
      out.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
    return out;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Token ids of every tokens frame, in order. */
export function streamedIds(frames: GenerateFrame[]): number[] {
  return frames.flatMap((f) => (f.type === 'tokens' ? f.ids : []));
}

export function doneFrame(frames: GenerateFrame[]) {
  const last = frames.at(-1);
  if (last?.type !== 'done')
    throw new Error(`the stream did not end with a done frame: ${JSON.stringify(last)}`);
  return last;
}
