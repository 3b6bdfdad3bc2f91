// What a completion is charged, and when: once it ended, whichever way (answered, failed, or the
// client hung up), its reservation is settled to what the model produced. You pay for that:
// nothing when it produced nothing, else the prompt and every token it sent.

import type { Admission } from '../limits/admission.ts';
import type { GenerationEvent, GenerationProgress } from './generation.ts';

type WaitUntil = { waitUntil(promise: Promise<unknown>): void };

/** A generation still running after this long of trying to end it is left to the runtime. */
const END_TIMEOUT_MS = 2000;

export class Settlement {
  readonly progress: GenerationProgress = { completionTokens: 0 };
  private promptTokens = 0;
  private readonly admission: Admission;
  private readonly ctx: WaitUntil;
  private resolveOver: () => void = () => {};
  private begun = false;

  constructor(admission: Admission, ctx: WaitUntil) {
    this.admission = admission;
    this.ctx = ctx;
  }

  private used = () =>
    this.progress.completionTokens > 0 ? this.promptTokens + this.progress.completionTokens : 0;

  /**
   * The generation starts: registers its settlement now, because a client that hangs up may stop
   * the request's handler while work handed to waitUntil still runs. The settlement waits for
   * `end()` (or the hang-up), ends the generation (cancelling it upstream), then settles.
   */
  begin(events: AsyncGenerator<GenerationEvent>, promptTokens: number): void {
    this.begun = true;
    this.promptTokens = promptTokens;
    const over = new Promise<void>((resolve) => {
      this.resolveOver = resolve;
    });
    this.admission.settle(this.ctx, this.used, async () => {
      await over;
      await Promise.race([
        events.return(undefined).catch(() => undefined),
        new Promise((resolve) => setTimeout(resolve, END_TIMEOUT_MS)),
      ]);
    });
  }

  /**
   * The request failed. Before any generation the reservation is settled (at 0) before the error
   * answer leaves, so a client's next request never finds it still in flight; after, as `end`.
   */
  async fail(): Promise<void> {
    if (!this.begun) await this.admission.settleNow(0);
    this.end();
  }

  /** The request is over (answered, failed or abandoned): settle. Idempotent. */
  end(): void {
    // Before begin(): nothing was generated, the reservation is settled at 0.
    this.admission.settle(this.ctx, this.used);
    this.resolveOver();
  }
}
