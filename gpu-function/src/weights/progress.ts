// Download progress for the logs: bytes, percent, throughput and an estimate of the time left,
// at most one line per interval so a long load stays readable.
import type { Logger } from '../log.ts';

export class ProgressReporter {
  private fetched = 0;
  private lastLogMs = 0;
  private readonly startMs = performance.now();
  private readonly total: number;
  private readonly log: Logger;
  private readonly intervalMs: number;

  constructor(total: number, log: Logger, intervalMs = 2000) {
    this.total = total;
    this.log = log;
    this.intervalMs = intervalMs;
  }

  add(n: number): void {
    this.fetched += n;
    const now = performance.now();
    if (now - this.lastLogMs >= this.intervalMs) {
      this.lastLogMs = now;
      this.log.info('load.progress', this.snapshot());
    }
  }

  get bytes(): number {
    return this.fetched;
  }

  snapshot() {
    const seconds = (performance.now() - this.startMs) / 1000;
    const rate = seconds > 0 ? this.fetched / seconds : 0;
    return {
      fetched_bytes: this.fetched,
      total_bytes: this.total,
      percent: this.total === 0 ? 100 : Math.round((1000 * this.fetched) / this.total) / 10,
      mb_per_s: Math.round(rate / 1e5) / 10,
      eta_s: rate > 0 ? Math.round((this.total - this.fetched) / rate) : null,
    };
  }
}
