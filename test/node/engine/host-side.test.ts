import { describe, expect, it } from 'vitest';
import {
  chunkSizes,
  DEFAULT_CHUNK_POLICY,
  fixedChunks,
} from '../../../gpu-function/src/engine/chunk-schedule.ts';
import { randomSeed, Xoshiro128 } from '../../../gpu-function/src/engine/prng.ts';

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

describe('chunk schedule', () => {
  it('starts small and grows to a bound, cutting the last chunk', () => {
    expect([...chunkSizes(DEFAULT_CHUNK_POLICY, 100)]).toEqual([4, 8, 16, 32, 32, 8]);
    expect([...chunkSizes(DEFAULT_CHUNK_POLICY, 3)]).toEqual([3]);
    expect([...chunkSizes(fixedChunks(5), 12)]).toEqual([5, 5, 2]);
  });
});
