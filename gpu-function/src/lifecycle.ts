// Scale to zero and graceful shutdown. The process exits by itself after `idleTimeoutMs`
// without generation work (the platform starts it again on demand). On SIGTERM it drains: new
// requests are refused with 503, in-flight streams get `drainTimeoutMs` to finish, then the
// rest are cancelled (they end with a done frame) and the process exits.
import type { Logger } from './log.ts';

export type ExitReason = 'idle' | 'sigterm' | 'sigint';

export class Lifecycle {
  private active = 0;
  /** Loads in progress: they keep the process from idling out, but a drain does not wait for them. */
  private loads = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private drainWaiters: (() => void)[] = [];
  private readonly cancelController = new AbortController();
  private readonly idleTimeoutMs: number;
  private readonly drainTimeoutMs: number;
  private readonly log: Logger;
  private readonly exit: (reason: ExitReason) => void;
  draining = false;

  constructor(o: {
    idleTimeoutMs: number;
    drainTimeoutMs: number;
    log: Logger;
    exit: (reason: ExitReason) => void;
  }) {
    this.idleTimeoutMs = o.idleTimeoutMs;
    this.drainTimeoutMs = o.drainTimeoutMs;
    this.log = o.log;
    this.exit = o.exit;
  }

  /** Aborted when the drain deadline passes: in-flight work must stop. */
  get cancelSignal(): AbortSignal {
    return this.cancelController.signal;
  }

  get inFlight(): number {
    return this.active;
  }

  /** Starts counting idle time (call once the server listens). */
  start(): void {
    this.armIdle();
  }

  begin(): void {
    this.active++;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  loadStarted(): void {
    this.loads++;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  loadEnded(): void {
    this.loads--;
    this.armIdle();
  }

  end(): void {
    this.active--;
    if (this.active > 0) return;
    for (const w of this.drainWaiters.splice(0)) w();
    this.armIdle();
  }

  private armIdle(): void {
    clearTimeout(this.idleTimer);
    if (this.draining || this.idleTimeoutMs <= 0 || this.active > 0 || this.loads > 0) return;
    this.idleTimer = setTimeout(() => {
      if (this.active > 0 || this.loads > 0 || this.draining) return;
      this.log.info('lifecycle.idle_exit', { idle_s: this.idleTimeoutMs / 1000 });
      this.draining = true;
      this.exit('idle');
    }, this.idleTimeoutMs);
    this.idleTimer.unref();
  }

  private idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Refuses new work, lets in-flight work finish within the bound, then exits. */
  async drain(reason: Exclude<ExitReason, 'idle'>): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    clearTimeout(this.idleTimer);
    this.log.info('lifecycle.draining', {
      reason,
      in_flight: this.active,
      timeout_s: this.drainTimeoutMs / 1000,
    });
    const deadline = new Promise<'timeout'>((resolve) =>
      setTimeout(() => resolve('timeout'), this.drainTimeoutMs),
    );
    if ((await Promise.race([this.idle().then(() => 'idle' as const), deadline])) === 'timeout') {
      this.log.warn('lifecycle.drain_timeout', { cancelling: this.active });
      this.cancelController.abort(new Error('the service is shutting down'));
      // Cancelled streams end within one engine chunk; do not wait forever for a stuck one.
      await Promise.race([this.idle(), new Promise((r) => setTimeout(r, 5000))]);
    }
    this.exit(reason);
  }
}
