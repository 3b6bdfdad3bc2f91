// The generation queue on its own: first come first served, bounded, and a waiter that gives
// up leaves the line without holding anyone back.
import { describe, expect, it } from 'vitest';
import { Scheduler } from '../../../gpu-function/src/scheduler.ts';
import { ApiError } from '../../../shared/src/errors.ts';

describe('Scheduler', () => {
  it('grants turns in arrival order, one slot at a time', async () => {
    const s = new Scheduler({ slots: 1, maxWaiting: 10 });
    const order: number[] = [];
    const tickets = [0, 1, 2, 3].map(() => s.enter());
    const signal = new AbortController().signal;
    // Ask in reverse: asking first must not let a later arrival overtake.
    const turns = tickets
      .map((t, i) => ({ t, i }))
      .reverse()
      .map(({ t, i }) =>
        t.turn(signal).then(() => {
          order.push(i);
        }),
      );
    for (let k = 0; k < 4; k++) {
      await Promise.race([...turns, new Promise((r) => setTimeout(r, 20))]);
      expect(s.running).toBe(1);
      tickets[order.at(-1)!]!.done();
    }
    await Promise.all(turns);
    expect(order).toEqual([0, 1, 2, 3]);
    expect(s.running).toBe(0);
    expect(s.waiting).toBe(0);
  });

  it('refuses newcomers with 503 and Retry-After once the line is full', () => {
    const s = new Scheduler({ slots: 1, maxWaiting: 2 });
    s.enter();
    s.enter();
    let refused: unknown;
    try {
      s.enter();
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as ApiError).status).toBe(503);
    expect(Number((refused as ApiError).headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });

  it('lets a waiter that gives up leave the line', async () => {
    const s = new Scheduler({ slots: 1, maxWaiting: 5 });
    const a = s.enter();
    const b = s.enter();
    const c = s.enter();
    await a.turn(new AbortController().signal);
    const giveUp = new AbortController();
    const bTurn = b.turn(giveUp.signal);
    const cTurn = c.turn(new AbortController().signal);
    expect(b.mustWait).toBe(true);
    giveUp.abort(new Error('client gone'));
    await expect(bTurn).rejects.toThrow('client gone');
    expect(s.waiting).toBe(1);
    a.done();
    await cTurn;
    expect(s.running).toBe(1);
    expect(s.waiting).toBe(0);
  });
});
