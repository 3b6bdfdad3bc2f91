// The queue in front of the engine on its own: room in rows and cache bytes, turns round the
// keys, a bounded line, and waiters that give up leave without holding anyone back.
import { describe, expect, it } from 'vitest';
import { Scheduler, type Ticket, type UnitSpec } from '../../../gpu-function/src/scheduler.ts';
import { ApiError } from '../../../shared/src/errors.ts';

const never = new AbortController().signal;
const unit = (rows = 1, tokens = 100): UnitSpec => ({ rows, tokens });
const tick = () => new Promise((r) => setTimeout(r, 5));

/** Asks for every unit's turn; records the order grants come in. */
function ask(tickets: { name: string; ticket: Ticket }[], order: string[]) {
  return tickets.flatMap(({ name, ticket }) =>
    Array.from({ length: ticket.units }, (_, i) =>
      ticket.turn(i, never).then(() => {
        order.push(`${name}${i}`);
      }),
    ),
  );
}

function refusal(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error('not refused');
}

describe('Scheduler', () => {
  it('admits units while rows are free, in arrival order within a key', async () => {
    const s = new Scheduler({ maxRows: 4, maxRowsPerKey: 4, kvBudgetBytes: 1e12, maxWaiting: 10 });
    const order: string[] = [];
    const a = s.enter('k', [unit(2), unit(1), unit(2)]);
    ask([{ name: 'a', ticket: a }], order);
    await tick();
    expect(order).toEqual(['a0', 'a1']); // 3 rows; a2 needs 2 more than the 4
    expect(s.runningRows).toBe(3);
    expect(s.waitingRows).toBe(2);
    a.done(0);
    await tick();
    expect(order).toEqual(['a0', 'a1', 'a2']);
    a.doneAll();
    expect(s.runningRows).toBe(0);
    expect(s.waiting).toBe(0);
  });

  it('takes turns between keys: a flood from one key leaves room for another at once', async () => {
    // 8 rows, 6 per key: the flooding key fills six, the next key's first unit runs at once.
    const s = new Scheduler({ maxRows: 8, kvBudgetBytes: 1e12, maxWaiting: 100 });
    const order: string[] = [];
    const flood = s.enter(
      'flood',
      Array.from({ length: 20 }, () => unit()),
    );
    ask([{ name: 'f', ticket: flood }], order);
    await tick();
    expect(order).toHaveLength(6);
    const other = s.enter('other', [unit(), unit(), unit()]);
    ask([{ name: 'o', ticket: other }], order);
    await tick();
    expect(order.slice(6)).toEqual(['o0', 'o1']);
    // Rows freed now alternate between the keys.
    flood.done(0);
    other.done(0);
    await tick();
    expect(order.slice(8).sort()).toEqual(['f6', 'o2']);
  });

  it('bounds the key/value cache: a unit that does not fit waits; one that never fits is a 400', async () => {
    // 10 bytes a token, budget 4000 bytes: 2 rows of 200 tokens fit, a third does not.
    const s = new Scheduler({ maxRows: 8, maxRowsPerKey: 8, kvBudgetBytes: 4000, maxWaiting: 10 });
    s.setKvBytesPerToken(10);
    const order: string[] = [];
    const t = s.enter('k', [unit(1, 200), unit(1, 200), unit(1, 50)]);
    ask([{ name: 't', ticket: t }], order);
    await tick();
    // The third is short, but the batch's longest row sets every row's room: 3 x 200 x 10 > 4000.
    expect(order).toEqual(['t0', 't1']);
    expect(s.kvBytesReserved).toBe(4000);
    t.done(1);
    await tick();
    expect(order).toEqual(['t0', 't1', 't2']);
    const tooBig = refusal(() => s.enter('k', [unit(1, 401)]));
    expect(tooBig.status).toBe(400);
    expect(tooBig.message).toMatch(/key\/value cache/);
    expect(refusal(() => s.enter('k', [unit(9)])).param).toBe('n');
  });

  it('refuses newcomers with 503 and Retry-After once the line is full', () => {
    const s = new Scheduler({ maxRows: 1, kvBudgetBytes: 1e12, maxWaiting: 2 });
    s.enter('a', [unit(), unit()]);
    const refused = refusal(() => s.enter('b', [unit()]));
    expect(refused.status).toBe(503);
    expect(refused.code).toBe('overloaded'); // the edge passes it on at once instead of waiting
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });

  it('lets a waiter that gives up leave the line', async () => {
    const s = new Scheduler({ maxRows: 1, kvBudgetBytes: 1e12, maxWaiting: 5 });
    const a = s.enter('a', [unit()]);
    const b = s.enter('b', [unit()]);
    const c = s.enter('c', [unit()]);
    await a.turn(0, never);
    const giveUp = new AbortController();
    const bTurn = b.turn(0, giveUp.signal);
    const cTurn = c.turn(0, never);
    expect(b.mustWait(0)).toBe(true);
    giveUp.abort(new Error('client gone'));
    await expect(bTurn).rejects.toThrow('client gone');
    expect(s.waiting).toBe(1);
    a.done(0);
    await cTurn;
    expect(s.running).toBe(1);
    expect(s.waiting).toBe(0);
  });
});
