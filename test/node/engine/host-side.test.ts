import { describe, expect, it } from 'vitest';
import { ChunkTimer } from '../../../gpu-function/src/engine/chunk-timer.ts';
import { KvBatch } from '../../../gpu-function/src/engine/kv-batch.ts';
import { randomSeed, sampleSeed, Xoshiro128 } from '../../../gpu-function/src/engine/prng.ts';
import type { ModelConfig } from '../../../gpu-function/src/model/config.ts';
import { presentKeyName, presentValueName } from '../../../gpu-function/src/model/generation-io.ts';

describe('host PRNG (xoshiro128** seeded by splitmix64)', () => {
  it('reproduces the reference stream for seed 0 (a changed stream would change every seeded output)', () => {
    // splitmix64(0) yields 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4; xoshiro128** from those words:
    const rng = new Xoshiro128(0);
    expect(Array.from({ length: 5 }, () => rng.nextUint32())).toEqual([
      3737715805, 2584255861, 2876756834, 3286328325, 1553311962,
    ]);
  });

  it('gives float32-exact uniforms in [0, 1) with a sane mean, and distinct streams per seed', () => {
    const rng = new Xoshiro128(12345);
    const u = Array.from({ length: 100_000 }, () => rng.nextUniform());
    expect(u.every((x) => x >= 0 && x < 1 && Math.fround(x) === x)).toBe(true);
    expect(Math.abs(u.reduce((a, b) => a + b, 0) / u.length - 0.5)).toBeLessThan(0.005);
    const a = new Xoshiro128(1).nextUint32();
    const b = new Xoshiro128(2).nextUint32();
    expect(a).not.toBe(b);
    expect(new Xoshiro128(-1).nextUint32()).toBe(new Xoshiro128(2n ** 64n - 1n).nextUint32());
  });

  it('draws random seeds that are safe integers', () => {
    const seeds = new Set(Array.from({ length: 100 }, randomSeed));
    expect(seeds.size).toBe(100);
    for (const s of seeds) expect(Number.isSafeInteger(s) && s >= 0).toBe(true);
  });
});

describe('sample seeds', () => {
  it('sample 0 draws from the seed itself; other samples get distinct streams', () => {
    expect(new Xoshiro128(sampleSeed(7, 0)).nextUint32()).toBe(new Xoshiro128(7).nextUint32());
    const firsts = new Set(
      Array.from({ length: 20 }, (_, j) => new Xoshiro128(sampleSeed(7, j)).nextUint32()),
    );
    expect(firsts.size).toBe(20);
  });
});

describe('chunk timer', () => {
  const open = { newcomer: false, maxRemaining: 1000, rowCap: Number.POSITIVE_INFINITY, room: 1000 };

  it('starts with one step, then fills the target interval from measured step times', () => {
    const t = new ChunkTimer({ targetMs: 200, maxSteps: 64 });
    expect(t.next(open)).toBe(1);
    t.observe(1, 20); // 20 ms a step
    expect(t.next(open)).toBe(10);
    t.observe(10, 100); // 10 ms a step: smoothed to 15
    expect(t.next(open)).toBe(13);
    t.observe(10, 0.5);
    expect(t.next(open)).toBeLessThanOrEqual(64);
  });

  it('never goes below one step nor past any bound; a newcomer gets one step', () => {
    const t = new ChunkTimer({ targetMs: 200, maxSteps: 64 });
    t.observe(1, 1);
    expect(t.next({ ...open, newcomer: true })).toBe(1);
    expect(t.next({ ...open, maxRemaining: 3 })).toBe(3);
    expect(t.next({ ...open, rowCap: 2 })).toBe(2);
    expect(t.next({ ...open, room: 5 })).toBe(5);
    t.observe(1, 10_000); // a step slower than the whole target
    expect(t.next(open)).toBe(1);
  });
});

describe('host-side batch cache', () => {
  const config = { numLayers: 1, numHeads: 2, headSize: 2 } as ModelConfig;
  // Layer 0 keys of a [B, 2, S, 2] batch; entry value = row * 100 + head * 10 + column.
  function batch(rows: number, columns: number): KvBatch {
    const data = new Float32Array(rows * 2 * columns * 2);
    for (let b = 0; b < rows; b++)
      for (let n = 0; n < 2; n++)
        for (let s = 0; s < columns; s++)
          for (let d = 0; d < 2; d++) data[((b * 2 + n) * columns + s) * 2 + d] = b * 100 + n * 10 + s;
    const t = { data, dims: [rows, 2, columns, 2] };
    return KvBatch.fromOutputs(config, 'float32', {
      [presentKeyName(0)]: t as never,
      [presentValueName(0)]: t as never,
    });
  }
  const keysOf = (kv: KvBatch) => kv.feeds()['past_key_values.0.key']?.data as Float32Array;

  it('gathers rows right-aligned, zero-padded on the left, repeating a source row where asked', () => {
    const a = batch(2, 3);
    const b = batch(1, 1);
    const merged = KvBatch.gather(
      config,
      'float32',
      [
        { source: a, row: 1, len: 2 },
        { source: b, row: 0, len: 1 },
        { source: b, row: 0, len: 1 },
        { source: a, row: 0, len: 0 },
      ],
      2,
    );
    expect(merged.rows).toBe(4);
    expect(merged.columns).toBe(2);
    const k = keysOf(merged);
    // row 0 = a's row 1, last two columns (1, 2), head 1
    expect(Array.from(k.subarray(4, 8))).toEqual([111, 111, 112, 112]);
    // rows 1 and 2 = b's row 0: padding then its column 0 (head 1 holds 10)
    expect(Array.from(k.subarray(12, 16))).toEqual([0, 0, 10, 10]);
    expect(Array.from(k.subarray(20, 24))).toEqual([0, 0, 10, 10]);
    // row 3 holds nothing
    expect(k.subarray(24).every((x) => x === 0)).toBe(true);
    expect(merged.bytes).toBe(2 * 4 * 2 * 2 * 2 * 4);
    expect(() => KvBatch.gather(config, 'float32', [{ source: a, row: 0, len: 3 }], 2)).toThrow(RangeError);
  });
});
