// Admission and turn-taking for generation requests. The engine runs `slots` generations at
// a time (one unless it batches); everyone else waits in one first-come-first-served line,
// which is fair across clients and bounded: past `maxWaiting` a request is refused at once
// (503 + Retry-After) instead of piling up. A place in line is taken on arrival, so requests
// that wait for the model load keep their order.
import { unavailable } from '../../shared/src/errors.ts';

interface Waiter {
  /** Set once the request asks for its turn (after the model is ready). */
  grant: (() => void) | null;
  granted: boolean;
  left: boolean;
}

export class Scheduler {
  private readonly slots: number;
  private readonly maxWaiting: number;
  private readonly line: Waiter[] = [];
  private runningCount = 0;
  /** Smoothed seconds a generation holds a slot, for Retry-After. */
  private meanServiceS = 5;
  private readonly onChange: () => void;

  constructor(opts: { slots: number; maxWaiting: number; onChange?: () => void }) {
    this.slots = opts.slots;
    this.maxWaiting = opts.maxWaiting;
    this.onChange = opts.onChange ?? (() => {});
  }

  get waiting(): number {
    return this.line.length;
  }

  get running(): number {
    return this.runningCount;
  }

  /** Seconds until a newcomer would likely get a slot. */
  retryAfterS(): number {
    return Math.max(1, Math.ceil(((this.line.length + 1) / this.slots) * this.meanServiceS));
  }

  /** Takes a place in line, or throws 503 when the line is full. */
  enter(): Ticket {
    if (this.line.length >= this.maxWaiting) {
      throw unavailable(
        `The generation queue is full (${this.maxWaiting} waiting); retry later.`,
        this.retryAfterS(),
      );
    }
    const w: Waiter = { grant: null, granted: false, left: false };
    this.line.push(w);
    this.onChange();
    return new Ticket(this, w);
  }

  /** @internal True unless `w` is first in line and a slot is free. */
  mustWait(w: Waiter): boolean {
    return this.runningCount >= this.slots || this.line[0] !== w;
  }

  /** @internal */
  waitTurn(w: Waiter, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.leave(w, 0);
        reject(signal.reason);
      };
      if (signal.aborted) return onAbort();
      w.grant = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.pump();
    });
  }

  /** @internal Releases a slot (or a place in line); `heldS` feeds the Retry-After estimate. */
  leave(w: Waiter, heldS: number): void {
    if (w.left) return;
    w.left = true;
    if (w.granted) {
      this.runningCount--;
      this.meanServiceS = 0.8 * this.meanServiceS + 0.2 * Math.max(0.1, heldS);
    } else {
      const i = this.line.indexOf(w);
      if (i >= 0) this.line.splice(i, 1);
    }
    this.pump();
    this.onChange();
  }

  private pump(): void {
    // Only the head of the line may start: later arrivals never overtake it.
    while (this.runningCount < this.slots) {
      const head = this.line[0];
      if (!head?.grant) break;
      this.line.shift();
      head.granted = true;
      this.runningCount++;
      head.grant();
      this.onChange();
    }
  }
}

/** One request's place in line; `turn` waits for a slot, `done` gives it back. */
export class Ticket {
  private readonly scheduler: Scheduler;
  private readonly waiter: Waiter;
  private grantedAt = 0;

  constructor(scheduler: Scheduler, waiter: Waiter) {
    this.scheduler = scheduler;
    this.waiter = waiter;
  }

  /** Whether `turn` would have to wait right now. */
  get mustWait(): boolean {
    return this.scheduler.mustWait(this.waiter);
  }

  async turn(signal: AbortSignal): Promise<void> {
    await this.scheduler.waitTurn(this.waiter, signal);
    this.grantedAt = performance.now();
  }

  done(): void {
    this.scheduler.leave(this.waiter, (performance.now() - this.grantedAt) / 1000);
  }
}
