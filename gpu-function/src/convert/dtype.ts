// Element type conversions on raw little-endian bits, done in place-sized chunks.
// float32 -> float16 rounds to nearest, ties to even (as numpy's astype and torch's .half() do);
// every other conversion here is exact.

import { endianness } from 'node:os';
import type { TensorDtype } from '../checkpoint/tensor-ref.ts';

// Typed arrays use the host's byte order; the files are little-endian.
if (endianness() !== 'LE') throw new Error('weight conversion needs a little-endian host');

export type OutputDtype = 'float32' | 'float16';

export const OUTPUT_DTYPE_BYTES: Record<OutputDtype, number> = { float32: 4, float16: 2 };

/** The checkpoint dtype that stores an output dtype unchanged. */
export const SOURCE_DTYPE_OF: Record<OutputDtype, TensorDtype> = { float32: 'F32', float16: 'F16' };

/** float32 bit pattern -> float16 bit pattern, round to nearest even; NaN stays NaN, overflow becomes inf. */
export function float32BitsToFloat16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0);
  const e = exponent - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): below 2^-25 everything rounds to zero.
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    return sign | (half + (rest > midpoint || (rest === midpoint && half & 1) ? 1 : 0));
  }
  const half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to inf).
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && half & 1) ? 1 : 0));
}

/** float16 bit pattern -> float32 bit pattern (exact). */
export function float16BitsToFloat32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal: shift the leading 1 into the implicit position.
  let m = mantissa;
  let e = 113;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

let halfToFloatTable: Uint32Array | undefined;
function halfTable(): Uint32Array {
  if (!halfToFloatTable) {
    halfToFloatTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) halfToFloatTable[h] = float16BitsToFloat32Bits(h);
  }
  return halfToFloatTable;
}

/**
 * Converts `count` elements from `src` (bytes of `from`) into `dst` (bytes of `to`).
 * Both buffers must start 4-byte aligned. Returns the number of bytes written.
 */
export function convertElements(
  from: TensorDtype,
  to: OutputDtype,
  src: Uint8Array,
  dst: Uint8Array,
  count: number,
): number {
  if (src.byteOffset % 4 !== 0 || dst.byteOffset % 4 !== 0)
    throw new Error('convertElements: unaligned buffer');
  if (from === SOURCE_DTYPE_OF[to]) {
    const n = count * OUTPUT_DTYPE_BYTES[to];
    dst.set(src.subarray(0, n));
    return n;
  }
  if (to === 'float32') {
    const out = new Uint32Array(dst.buffer, dst.byteOffset, count);
    const inp = new Uint16Array(src.buffer, src.byteOffset, count);
    if (from === 'BF16') for (let i = 0; i < count; i++) out[i] = inp[i]! << 16;
    else {
      const table = halfTable();
      for (let i = 0; i < count; i++) out[i] = table[inp[i]!]!;
    }
    return count * 4;
  }
  const out = new Uint16Array(dst.buffer, dst.byteOffset, count);
  if (from === 'F32') {
    const inp = new Uint32Array(src.buffer, src.byteOffset, count);
    for (let i = 0; i < count; i++) out[i] = float32BitsToFloat16Bits(inp[i]!);
  } else {
    // BF16 widens exactly to float32 first, so this rounds only once.
    const inp = new Uint16Array(src.buffer, src.byteOffset, count);
    for (let i = 0; i < count; i++) out[i] = float32BitsToFloat16Bits(inp[i]! << 16);
  }
  return count * 2;
}

/** float32 bit pattern -> bfloat16 bit pattern, round to nearest even; NaN stays NaN. */
export function float32BitsToBfloat16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}
