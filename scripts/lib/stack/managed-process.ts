// A child process of the stack: started under guard.ts (so it dies with us, even if we are
// killed), its output split into lines for the stack log, stopped by signalling its whole
// process group (a command and the processes it started).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const GUARD = fileURLToPath(new URL('./guard.ts', import.meta.url));

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcessOptions {
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Every line the process writes, stdout and stderr apart. */
  onLine: (line: string, stream: 'stdout' | 'stderr') => void;
}

/** The guard exits with 128 + n when the command was killed by signal n. */
function statusOf(code: number | null, signal: NodeJS.Signals | null): ExitStatus {
  if (signal || code === null || code <= 128) return { code, signal };
  const name = Object.entries(constants.signals).find(([, n]) => n === code - 128)?.[0];
  return name ? { code: null, signal: name as NodeJS.Signals } : { code, signal: null };
}

export function describeExit(status: ExitStatus): string {
  return status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
}

export class ManagedProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitStatus>;
  private done = false;

  constructor(o: ProcessOptions) {
    this.child = spawn(process.execPath, [GUARD, o.command, ...o.args], {
      cwd: o.cwd,
      env: o.env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // Only held open: its end tells the guard that we are gone.
    this.child.stdin?.on('error', () => {});
    for (const stream of ['stdout', 'stderr'] as const) {
      const input = this.child[stream];
      if (input) createInterface({ input }).on('line', (line) => o.onLine(line, stream));
    }
    this.exited = once(this.child, 'exit').then(([code, signal]) => {
      this.done = true;
      return statusOf(code as number | null, signal as NodeJS.Signals | null);
    });
  }

  /** The process group (the guard's pid). */
  get pid(): number {
    return this.child.pid ?? 0;
  }

  get running(): boolean {
    return !this.done;
  }

  /** Sends a signal to the command and everything it started. */
  signal(signal: NodeJS.Signals): void {
    if (this.done || !this.child.pid) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then SIGKILL if it is still running after `graceMs`. */
  async stop(graceMs: number): Promise<ExitStatus> {
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
