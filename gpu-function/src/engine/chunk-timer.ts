// How many tokens the next run of the generation graph decodes. Tokens reach clients only at
// chunk ends, and newcomers join only between chunks, so a chunk should end within a target
// interval; longer chunks save the per-run cost (the whole cache crosses the host/runtime
// boundary in and out once per run). The length comes from measured step times, so it adapts
// to the device, the model, the batch size and the context length as they change.

export interface ChunkTiming {
  /** A chunk should take about this long (default 200 ms). */
  targetMs: number;
  /** Never more tokens than this in one run (bounds the uniforms and the worst case). */
  maxSteps: number;
}

export const DEFAULT_CHUNK_TIMING: ChunkTiming = { targetMs: 200, maxSteps: 64 };

export function validateChunkTiming(t: ChunkTiming): ChunkTiming {
  if (!(t.targetMs > 0) || !Number.isInteger(t.maxSteps) || t.maxSteps < 1) {
    throw new RangeError(`invalid chunk timing ${JSON.stringify(t)}`);
  }
  return t;
}

export interface ChunkBounds {
  /** Some row has produced nothing yet: its first token should arrive after one step. */
  newcomer: boolean;
  /** The most tokens any row may still produce. */
  maxRemaining: number;
  /** A cap some row asked for (tests), or Infinity. */
  rowCap: number;
  /** Columns the cache may still grow by before it passes its budgeted length. */
  room: number;
}

export class ChunkTimer {
  private readonly timing: ChunkTiming;
  /** Smoothed milliseconds per decode step; null until the first run. */
  private msPerStep: number | null = null;

  constructor(timing: ChunkTiming = DEFAULT_CHUNK_TIMING) {
    this.timing = validateChunkTiming(timing);
  }

  /** Steps for the next run: at least one, within every bound. */
  next(b: ChunkBounds): number {
    const byTime =
      this.msPerStep === null ? 1 : Math.floor(this.timing.targetMs / Math.max(this.msPerStep, 1e-3));
    const wanted = b.newcomer ? 1 : Math.min(byTime, this.timing.maxSteps);
    return Math.max(1, Math.min(wanted, b.maxRemaining, b.rowCap, b.room));
  }

  /** Feeds back a decode run's measured time. A run's fixed cost counts against its steps. */
  observe(steps: number, ms: number): void {
    if (steps < 1 || !(ms >= 0)) return;
    const perStep = ms / steps;
    this.msPerStep = this.msPerStep === null ? perStep : 0.5 * this.msPerStep + 0.5 * perStep;
  }
}
