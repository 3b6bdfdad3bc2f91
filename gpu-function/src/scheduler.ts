// The one queue in front of the engine: which rows join the running batch, and when.
//
// A request is split into units (a prompt and some of its samples, at most a batch's worth of
// rows); each unit waits for room and joins the batch on its own. Room is rows (MAX_BATCH) and
// key/value cache bytes: a batch of B rows whose longest row may reach T tokens holds
// B x T x bytesPerToken, and that must stay within the budget, so a unit that does not fit
// waits instead of running the process out of memory. Turns go round the keys (the edge's
// opaque key ids): a key with twenty units waiting gets one turn per round like a key with one,
// and no key may hold more than `maxRowsPerKey` rows, so the batch keeps room for a newcomer:
// a flood from one key delays another's first token by about a chunk and a prefill, not by
// the flood's whole generations.
// Within a key, units keep their arrival order. Past `maxWaiting` units a newcomer is refused
// at once (503 + Retry-After).

import { badRequest, OVERLOADED_CODE, unavailable } from '../../shared/src/errors.ts';

export interface UnitSpec {
  /** Rows (samples) the unit adds to the batch. */
  rows: number;
  /** The most tokens one of its rows may reach: prompt + max_new_tokens. */
  tokens: number;
}

export interface SchedulerOptions {
  /** Rows in the batch at most. */
  maxRows: number;
  /** Rows one key may hold at once (default three quarters of maxRows, at least 1). */
  maxRowsPerKey?: number;
  /** Key/value cache budget of the batch, in bytes. */
  kvBudgetBytes: number;
  /** Units waiting at most; more are refused with 503. */
  maxWaiting: number;
  onChange?: () => void;
}

interface Waiter {
  key: string;
  unit: UnitSpec;
  enteredAt: number;
  /** Set once the unit asks for its turn (after the model is ready). */
  grant: (() => void) | null;
  reject: ((err: unknown) => void) | null;
  state: 'waiting' | 'running' | 'gone';
}

export class Scheduler {
  private readonly o: SchedulerOptions;
  /** Waiting units per key, in arrival order; keys in the order they last got a turn. */
  private readonly lines = new Map<string, Waiter[]>();
  private readonly admitted = new Set<Waiter>();
  private waitingCount = 0;
  private kvBytesPerToken = 0;
  /** Smoothed seconds a unit holds its rows, for Retry-After. */
  private meanServiceS = 5;
  /** Seconds the last admitted units waited (for metrics). */
  lastWaitS = 0;

  private readonly maxRowsPerKey: number;

  constructor(o: SchedulerOptions) {
    this.o = o;
    this.maxRowsPerKey = Math.min(o.maxRows, o.maxRowsPerKey ?? Math.max(1, Math.ceil(o.maxRows * 0.75)));
  }

  /** Rows one unit may have: requests with more rows are split into several units. */
  get maxUnitRows(): number {
    return this.maxRowsPerKey;
  }

  get waiting(): number {
    return this.waitingCount;
  }

  get waitingRows(): number {
    let n = 0;
    for (const line of this.lines.values()) for (const w of line) n += w.unit.rows;
    return n;
  }

  /** Units running now. */
  get running(): number {
    return this.admitted.size;
  }

  get runningRows(): number {
    let n = 0;
    for (const w of this.admitted) n += w.unit.rows;
    return n;
  }

  /** Cache bytes the running units may reach (the admission bound). */
  get kvBytesReserved(): number {
    return this.footprint([...this.admitted].map((w) => w.unit));
  }

  /** The model's key/value bytes per token (all layers, keys and values); known once it loads. */
  setKvBytesPerToken(bytes: number): void {
    this.kvBytesPerToken = bytes;
    this.pump();
  }

  retryAfterS(): number {
    const rounds = (this.waitingRows + 1) / Math.max(1, this.o.maxRows);
    return Math.max(1, Math.ceil(rounds * this.meanServiceS));
  }

  /**
   * Takes places in line for a request's units, or throws: 503 when the line is full, 400 when
   * a unit could never fit an empty batch.
   */
  enter(key: string, units: readonly UnitSpec[]): Ticket {
    for (const u of units) this.checkFits(u);
    if (this.waitingCount + units.length > this.o.maxWaiting) {
      throw unavailable(
        `The GPU function is overloaded (${this.waitingCount} requests waiting); retry later.`,
        this.retryAfterS(),
        OVERLOADED_CODE,
      );
    }
    const waiters = units.map(
      (unit): Waiter => ({
        key,
        unit,
        enteredAt: performance.now(),
        grant: null,
        reject: null,
        state: 'waiting',
      }),
    );
    let line = this.lines.get(key);
    if (!line) {
      line = [];
      this.lines.set(key, line);
    }
    line.push(...waiters);
    this.waitingCount += waiters.length;
    this.o.onChange?.();
    return new Ticket(this, waiters);
  }

  /** @internal Whether `w` would have to wait if it asked for its turn now. */
  mustWait(w: Waiter): boolean {
    if (w.state !== 'waiting') return false;
    const head = this.lines.get(w.key)?.[0] === w;
    return !(head && this.rowsOf(w.key) + w.unit.rows <= this.maxRowsPerKey && this.fits(w.unit));
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
      w.reject = (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.pump();
    });
  }

  /** @internal Frees a unit's rows (or its place in line); `heldS` feeds Retry-After. */
  leave(w: Waiter, heldS: number): void {
    if (w.state === 'gone') return;
    if (w.state === 'running') {
      this.admitted.delete(w);
      this.meanServiceS = 0.8 * this.meanServiceS + 0.2 * Math.max(0.1, heldS);
    } else {
      const line = this.lines.get(w.key);
      const i = line?.indexOf(w) ?? -1;
      if (line && i >= 0) {
        line.splice(i, 1);
        this.waitingCount--;
        if (line.length === 0) this.lines.delete(w.key);
      }
    }
    w.state = 'gone';
    this.pump();
    this.o.onChange?.();
  }

  private rowsOf(key: string): number {
    let n = 0;
    for (const w of this.admitted) if (w.key === key) n += w.unit.rows;
    return n;
  }

  private footprint(units: readonly UnitSpec[]): number {
    const rows = units.reduce((n, u) => n + u.rows, 0);
    const longest = Math.max(0, ...units.map((u) => u.tokens));
    return rows * longest * this.kvBytesPerToken;
  }

  private checkFits(u: UnitSpec): void {
    if (u.rows > this.maxRowsPerKey) {
      throw badRequest(
        `A request part of ${u.rows} rows exceeds this server's ${this.maxRowsPerKey} per key.`,
        'n',
      );
    }
    if (this.footprint([u]) > this.o.kvBudgetBytes) {
      throw badRequest(
        `This request needs ${this.footprint([u])} bytes of key/value cache, more than this server's budget ` +
          `of ${this.o.kvBudgetBytes}; lower max_tokens or n.`,
        'max_tokens',
      );
    }
  }

  private fits(u: UnitSpec): boolean {
    const running = [...this.admitted].map((w) => w.unit);
    const rows = running.reduce((n, r) => n + r.rows, 0) + u.rows;
    return rows <= this.o.maxRows && this.footprint([...running, u]) <= this.o.kvBudgetBytes;
  }

  /**
   * Grants turns round the keys. The key whose turn it is waits for room rather than being
   * overtaken, so a large unit is never starved by a stream of small ones.
   */
  private pump(): void {
    for (;;) {
      // Keys at their own row cap sit this round out; they do not block the others.
      const next = [...this.lines.entries()].find(
        ([key, line]) => line[0]?.grant && this.rowsOf(key) + line[0].unit.rows <= this.maxRowsPerKey,
      );
      if (!next) return;
      const [key, line] = next;
      const head = line[0] as Waiter;
      try {
        this.checkFits(head.unit); // the model (and its bytes per token) may be known only now
      } catch (err) {
        line.shift();
        this.waitingCount--;
        head.state = 'gone';
        if (line.length === 0) this.lines.delete(key);
        head.reject?.(err);
        continue;
      }
      if (!this.fits(head.unit)) return;
      line.shift();
      this.waitingCount--;
      // The key goes to the back of the round.
      this.lines.delete(key);
      if (line.length > 0) this.lines.set(key, line);
      head.state = 'running';
      this.admitted.add(head);
      this.lastWaitS = (performance.now() - head.enteredAt) / 1000;
      head.grant?.();
      this.o.onChange?.();
    }
  }
}

/** A request's places in line, one per unit; `turn(i)` waits for unit i, `done(i)` frees it. */
export class Ticket {
  private readonly scheduler: Scheduler;
  private readonly waiters: Waiter[];
  private readonly grantedAt: number[] = [];

  constructor(scheduler: Scheduler, waiters: Waiter[]) {
    this.scheduler = scheduler;
    this.waiters = waiters;
  }

  get units(): number {
    return this.waiters.length;
  }

  /** Whether unit i would have to wait right now. */
  mustWait(i: number): boolean {
    return this.scheduler.mustWait(this.waiters[i] as Waiter);
  }

  async turn(i: number, signal: AbortSignal): Promise<void> {
    await this.scheduler.waitTurn(this.waiters[i] as Waiter, signal);
    this.grantedAt[i] = performance.now();
  }

  done(i: number): void {
    const heldS = (performance.now() - (this.grantedAt[i] ?? performance.now())) / 1000;
    this.scheduler.leave(this.waiters[i] as Waiter, heldS);
  }

  /** Frees every unit (the request ended, however it ended). */
  doneAll(): void {
    for (let i = 0; i < this.waiters.length; i++) this.done(i);
  }
}
