// Applies stop sequences to streamed text. Text is released as soon as it cannot be the start
// of a stop sequence; the rest is held back until the next piece decides. The output is cut
// exactly before the first stop sequence, even when it spans several tokens.

export interface StopResult {
  /** Text safe to send now. */
  text: string;
  /** A stop sequence was found; `text` ends right before it and nothing more will come. */
  stopped: boolean;
  /** The stop sequence found. */
  stop?: string;
}

export class StopMatcher {
  private readonly stops: string[];
  private pending = '';
  private done = false;

  constructor(stops: string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  push(piece: string): StopResult {
    if (this.done) return { text: '', stopped: true };
    if (this.stops.length === 0) return { text: piece, stopped: false };
    this.pending += piece;

    let first = -1;
    let found = '';
    for (const stop of this.stops) {
      const at = this.pending.indexOf(stop);
      if (at >= 0 && (first < 0 || at < first)) {
        first = at;
        found = stop;
      }
    }
    if (first >= 0) {
      this.done = true;
      const text = this.pending.slice(0, first);
      this.pending = '';
      return { text, stopped: true, stop: found };
    }

    const keep = this.longestStopPrefixAtEnd();
    const text = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    return { text, stopped: false };
  }

  /** The end of generation: whatever was held back is ordinary text after all. */
  flush(): string {
    if (this.done) return '';
    const text = this.pending;
    this.pending = '';
    return text;
  }

  /** Length of the longest suffix of `pending` that begins some stop sequence. */
  private longestStopPrefixAtEnd(): number {
    let best = 0;
    for (const stop of this.stops) {
      const max = Math.min(stop.length - 1, this.pending.length);
      for (let n = max; n > best; n--) {
        if (this.pending.endsWith(stop.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
