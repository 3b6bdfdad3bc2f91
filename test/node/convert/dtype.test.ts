// Element conversions: float32 -> float16 must round to nearest even like numpy, including
// subnormals, overflow and NaN; float16/bfloat16 -> float32 must be exact.

import { describe, expect, it } from 'vitest';
import { Xoshiro128 } from '../../../gpu-function/src/checkpoint/normal-random.ts';
import {
  convertElements,
  float16BitsToFloat32Bits,
  float32BitsToBfloat16Bits,
  float32BitsToFloat16Bits,
} from '../../../gpu-function/src/convert/dtype.ts';

const f32bits = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0]!;
const bitsf32 = (b: number) => new Float32Array(new Uint32Array([b]).buffer)[0]!;
/** float16 value by the format's definition, computed in doubles. */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return e === 0 ? sign * m * 2 ** -24 : sign * (1 + m / 1024) * 2 ** (e - 15);
}

describe('float16 conversions', () => {
  it('widens every float16 value exactly', () => {
    for (let h = 0; h < 65536; h++) {
      const v = halfValue(h);
      const got = bitsf32(float16BitsToFloat32Bits(h));
      if (Number.isNaN(v)) expect(Number.isNaN(got)).toBe(true);
      else expect(Object.is(got, v) || got === v).toBe(true);
    }
  });

  it('round-trips every non-NaN float16 through float32', () => {
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue;
      expect(float32BitsToFloat16Bits(float16BitsToFloat32Bits(h))).toBe(h);
    }
  });

  it('rounds to nearest, ties to even, at the edges', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [-0, 0x8000],
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00], // halfway to 65536: ties to even, which is infinity
      [1e10, 0x7c00],
      [Number.NEGATIVE_INFINITY, 0xfc00],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: even is 0
      [2 ** -25 * 1.5, 0x0001],
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal steps: even is 2
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -14 - 2 ** -25, 0x0400], // rounds up into the normal range
      [1 + 2 ** -11, 0x3c00], // tie: 0x3c00 is even
      [1 + 3 * 2 ** -11, 0x3c02], // tie: 0x3c02 is even
      [1 + 2 ** -11 + 2 ** -20, 0x3c01],
    ];
    for (const [x, want] of cases) expect(float32BitsToFloat16Bits(f32bits(x)), String(x)).toBe(want);
    expect(float32BitsToFloat16Bits(f32bits(Number.NaN)) & 0x7fff).toBeGreaterThan(0x7c00);
  });

  it('picks the nearest float16 for random float32 values (checked against neighbours)', () => {
    const rng = new Xoshiro128(7);
    for (let i = 0; i < 20000; i++) {
      // Random bit patterns across the float16 range and a little beyond.
      const bits = (rng.next() & 0x83ffffff) | ((0x60 + (rng.next() % 0x20)) << 23);
      const x = bitsf32(bits);
      const h = float32BitsToFloat16Bits(bits);
      const err = Math.abs(halfValue(h) - x);
      for (const neighbour of [h - 1, h + 1]) {
        if ((neighbour & 0x7c00) === 0x7c00 || (neighbour & 0x8000) !== (h & 0x8000)) continue;
        const other = Math.abs(halfValue(neighbour) - x);
        expect(err < other || (err === other && (h & 1) === 0), `${x}`).toBe(true);
      }
    }
  });
});

describe('bfloat16 and convertElements', () => {
  it('rounds float32 to bfloat16 to nearest even', () => {
    expect(float32BitsToBfloat16Bits(f32bits(1))).toBe(0x3f80);
    expect(float32BitsToBfloat16Bits(0x3f808000)).toBe(0x3f80); // tie, even stays
    expect(float32BitsToBfloat16Bits(0x3f818000)).toBe(0x3f82); // tie, rounds to even
    expect(float32BitsToBfloat16Bits(0x3f808001)).toBe(0x3f81);
    expect(float32BitsToBfloat16Bits(0x7f7fffff)).toBe(0x7f80); // overflow to infinity
    expect(float32BitsToBfloat16Bits(0x7fc00001) & 0x7f).toBeGreaterThan(0);
  });

  it('converts buffers between every source and output type', () => {
    const values = [0, 1, -2.5, 0.1, 1e-3, 65504];
    const src32 = new Uint8Array(new Float32Array(values).buffer);
    const out = new Uint8Array(values.length * 4);
    expect(convertElements('F32', 'float32', src32, out, values.length)).toBe(24);
    expect([...new Float32Array(out.buffer)]).toEqual([...new Float32Array(values)]);

    expect(convertElements('F32', 'float16', src32, out, values.length)).toBe(12);
    const halves = new Uint16Array(out.buffer.slice(0, 12));
    expect([...halves].map(halfValue)).toEqual([0, 1, -2.5, halfValue(0x2e66), halfValue(0x1419), 65504]);

    const back = new Uint8Array(values.length * 4);
    convertElements('F16', 'float32', new Uint8Array(halves.buffer), back, values.length);
    expect([...new Float32Array(back.buffer)]).toEqual([...halves].map(halfValue));

    const bf = new Uint16Array(values.map((v) => float32BitsToBfloat16Bits(f32bits(v))));
    convertElements('BF16', 'float32', new Uint8Array(bf.buffer), back, values.length);
    expect([...new Float32Array(back.buffer)]).toEqual([...bf].map((b) => bitsf32(b << 16)));
  });
});
