// Symmetric block quantization of linear weights into MatMulNBits' layout (see
// ../model/quantized-linear.ts). Each block of `blockSize` values along a row gets the scale
// s = max|w| / qmax (qmax = 7 for int4, 127 for int8) and codes q = round(w / s) in
// [-qmax, qmax], stored as q + 2^(bits-1). Round to nearest makes every value's error at most
// half a step, |w - q·s| <= s/2, which is the bound the accuracy tests derive their tolerances
// from. No zero points are stored (symmetric: MatMulNBits' default zero point is 2^(bits-1)).

import { type QuantizedDtype, quantizedLayout, type ScaleDtype } from '../model/quantized-linear.ts';
import { float16BitsToFloat32Bits, float32BitsToFloat16Bits } from './dtype.ts';

export interface QuantScheme {
  bits: 4 | 8;
  blockSize: number;
  /** Type of the stored scales: the compute type of the graphs that read them. */
  scaleDtype: ScaleDtype;
}

export const DEFAULT_BLOCK_SIZE = 32;

export const QUANTIZED_DTYPE: Record<4 | 8, QuantizedDtype> = { 4: 'int4', 8: 'int8' };

/** Largest code magnitude: the symmetric range leaves out the most negative code. */
export const qmax = (bits: 4 | 8): number => (bits === 4 ? 7 : 127);

/**
 * The tensors a quantized conversion quantizes: every linear weight (QKV, attention output, both
 * MLP projections) and the LM head. The input embedding is only gathered from (one row per
 * token, memory-mapped) and is kept as float16; layer norms are tiny.
 */
const QUANTIZED_TENSOR =
  /^(transformer\.layers\.\d+\.(attention\.(query_key_value|dense)|mlp\.(packed_input_proj|out_proj))|embed_out)\.weight$/;

export function isQuantizedTensor(name: string): boolean {
  return QUANTIZED_TENSOR.test(name);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float16 value nearest to x, as a float32 number. */
function toHalfPrecision(x: number): number {
  f32[0] = x;
  u32[0] = float16BitsToFloat32Bits(float32BitsToFloat16Bits(u32[0]!));
  return f32[0]!;
}

/**
 * Quantizes `rows` rows of `cols` values (row-major float32) into codes and scales.
 * `data` receives rows * blocks * blobBytes bytes, `scales` rows * blocks values (float32 or
 * float16 bits). A row's last block is padded with zeros when cols is not a multiple of the
 * block size.
 */
export function quantizeRows(
  src: Float32Array,
  rows: number,
  cols: number,
  scheme: QuantScheme,
  data: Uint8Array,
  scales: Float32Array | Uint16Array,
): void {
  const { bits, blockSize } = scheme;
  const { blocks, blobBytes } = quantizedLayout(rows, cols, bits, blockSize);
  const top = qmax(bits);
  const offset = 1 << (bits - 1);
  const half = scheme.scaleDtype === 'float16';
  for (let r = 0; r < rows; r++) {
    const rowStart = r * cols;
    for (let b = 0; b < blocks; b++) {
      const start = rowStart + b * blockSize;
      const n = Math.min(blockSize, cols - b * blockSize);
      let amax = 0;
      for (let i = 0; i < n; i++) {
        const a = Math.abs(src[start + i]!);
        if (a > amax) amax = a;
      }
      if (!Number.isFinite(amax)) throw new RangeError(`row ${r} holds a non-finite value`);
      // The scale as stored is the one the codes are rounded against, so the bound holds for it.
      let s = Math.fround(amax / top);
      if (half) {
        s = toHalfPrecision(s);
        (scales as Uint16Array)[r * blocks + b] = float32BitsToFloat16Bits(bitsOf(s));
      } else (scales as Float32Array)[r * blocks + b] = s;
      const inv = s > 0 ? 1 / s : 0;
      const out = (r * blocks + b) * blobBytes;
      if (bits === 8) {
        for (let i = 0; i < blockSize; i++) data[out + i] = code(src, start, i, n, inv, top) + offset;
      } else {
        for (let i = 0; i < blockSize; i += 2) {
          const lo = code(src, start, i, n, inv, top) + offset;
          const hi = code(src, start, i + 1, n, inv, top) + offset;
          data[out + i / 2] = lo | (hi << 4);
        }
      }
    }
  }
}

/** The signed code of value i of a block (0 for the padding past n values). */
function code(src: Float32Array, start: number, i: number, n: number, inv: number, top: number): number {
  if (i >= n) return 0;
  const q = Math.round(src[start + i]! * inv);
  return Math.min(top, Math.max(-top, q));
}

function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

/** The values quantized codes stand for: rows x cols float32 (tests and reference models). */
export function dequantizeRows(
  data: Uint8Array,
  scales: Float32Array | Uint16Array,
  rows: number,
  cols: number,
  scheme: QuantScheme,
): Float32Array {
  const { bits, blockSize } = scheme;
  const { blocks, blobBytes } = quantizedLayout(rows, cols, bits, blockSize);
  const offset = 1 << (bits - 1);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const b = Math.floor(c / blockSize);
      const i = c % blockSize;
      const at = (r * blocks + b) * blobBytes;
      const code = bits === 8 ? data[at + i]! : (data[at + (i >> 1)]! >> ((i & 1) * 4)) & 0xf;
      const raw = scales[r * blocks + b]!;
      const s = scheme.scaleDtype === 'float16' ? halfToNumber(raw) : raw;
      out[r * cols + c] = (code - offset) * s;
    }
  }
  return out;
}

function halfToNumber(h: number): number {
  u32[0] = float16BitsToFloat32Bits(h);
  return f32[0]!;
}
