// A single-consumer async queue: the producer pushes items, then closes or fails it; the
// consumer iterates with for-await. `onReturn` runs when the consumer stops early.

export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private items: T[] = [];
  private ended = false;
  private error: { reason: unknown } | undefined;
  private waiter: (() => void) | undefined;

  private readonly onReturn: () => void;

  constructor(onReturn: () => void = () => {}) {
    this.onReturn = onReturn;
  }

  push(item: T): void {
    if (this.ended) return;
    this.items.push(item);
    this.wake();
  }

  close(): void {
    this.ended = true;
    this.wake();
  }

  fail(reason: unknown): void {
    if (this.ended) return;
    this.error = { reason };
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async next(): Promise<IteratorResult<T>> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) return { value: item, done: false };
      if (this.error) throw this.error.reason;
      if (this.ended) return { value: undefined, done: true };
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  async return(): Promise<IteratorResult<T>> {
    if (!this.ended) this.onReturn();
    this.ended = true;
    this.items = [];
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
