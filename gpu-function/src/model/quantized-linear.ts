// Block-quantized linear weights as com.microsoft MatMulNBits (CPU and CUDA kernels in
// onnxruntime). A weight W [N, K] (the checkpoint's [out, in] layout) is cut, row by row, into
// blocks of `blockSize` values along K; each block keeps one scale s and `bits`-bit codes q, and
// stands for (q - 2^(bits-1)) * s. MatMulNBits takes exactly that layout with the zero point left
// out (its default is 2^(bits-1)): B uint8 [N, blocks, blockSize * bits / 8], 4-bit codes packed
// low nibble first, and scales [N * blocks] in the compute type. y = x · Wᵀ without a transpose.

import type { GraphBuilder } from './onnx/index.ts';

export type QuantizedDtype = 'int4' | 'int8';
export type ScaleDtype = 'float32' | 'float16';

export const QUANTIZED_BITS: Record<QuantizedDtype, 4 | 8> = { int4: 4, int8: 8 };

/** Block sizes MatMulNBits accepts: powers of two from 16. */
export const BLOCK_SIZES: readonly number[] = [16, 32, 64, 128, 256];

export function isQuantizedDtype(dtype: string): dtype is QuantizedDtype {
  return dtype === 'int4' || dtype === 'int8';
}

/** Where a quantized weight's scales are (the codes are the entry's own location). */
export interface BlockQuantization {
  blockSize: number;
  scales: { location: string; offset: number; length: number; dtype: ScaleDtype };
}

export interface QuantizedLayout {
  /** Blocks per row: ceil(K / blockSize); the last one is zero-padded. */
  blocks: number;
  /** Bytes of one block's codes. */
  blobBytes: number;
  /** Bytes of all codes: N * blocks * blobBytes. */
  dataBytes: number;
  /** Number of scales: N * blocks. */
  scaleCount: number;
}

export function quantizedLayout(rows: number, cols: number, bits: 4 | 8, blockSize: number): QuantizedLayout {
  const blocks = Math.ceil(cols / blockSize);
  const blobBytes = (blockSize * bits) / 8;
  return { blocks, blobBytes, dataBytes: rows * blocks * blobBytes, scaleCount: rows * blocks };
}

/** A quantized weight registered in a graph: what one MatMulNBits node needs. */
export interface QuantizedWeight {
  data: string;
  scales: string;
  rows: number;
  cols: number;
  bits: 4 | 8;
  blockSize: number;
}

const SCALE_BYTES: Record<ScaleDtype, number> = { float32: 4, float16: 2 };
const CAST_TO: Record<ScaleDtype, number> = { float32: 1, float16: 10 };

/**
 * Registers a quantized weight's codes and scales as external initializers of `g` (the main
 * graph), checking the manifest's byte counts against the shape. Scales stored in another type
 * than the compute type get one Cast here, which onnxruntime folds at session creation.
 */
export function quantizedWeight(
  g: GraphBuilder,
  name: string,
  shape: number[],
  entry: {
    location: string;
    offset: number;
    length: number;
    dtype: QuantizedDtype;
    quantization?: BlockQuantization;
  },
  computeDtype: ScaleDtype,
): QuantizedWeight {
  const q = entry.quantization;
  if (!q) throw new Error(`weights: '${name}' is ${entry.dtype} but has no quantization (scales) entry`);
  if (shape.length !== 2)
    throw new Error(`weights: '${name}' is ${entry.dtype}; only matrices can be quantized`);
  if (!BLOCK_SIZES.includes(q.blockSize)) {
    throw new Error(
      `weights: '${name}' has block size ${q.blockSize}; MatMulNBits takes ${BLOCK_SIZES.join(', ')}`,
    );
  }
  const [rows, cols] = shape as [number, number];
  const bits = QUANTIZED_BITS[entry.dtype];
  const layout = quantizedLayout(rows, cols, bits, q.blockSize);
  if (entry.length !== layout.dataBytes) {
    throw new Error(
      `weights: '${name}' has ${entry.length} bytes of codes; ${entry.dtype}[${shape}] in blocks of ${q.blockSize} needs ${layout.dataBytes}`,
    );
  }
  const scaleBytes = layout.scaleCount * SCALE_BYTES[q.scales.dtype];
  if (q.scales.length !== scaleBytes) {
    throw new Error(`weights: '${name}' has ${q.scales.length} bytes of scales; it needs ${scaleBytes}`);
  }
  const data = g.externalInitializer(name, 'uint8', [rows, layout.blocks, layout.blobBytes], {
    location: entry.location,
    offset: entry.offset,
    length: entry.length,
  });
  let scales = g.externalInitializer(`${name}.scales`, q.scales.dtype, [layout.scaleCount], {
    location: q.scales.location,
    offset: q.scales.offset,
    length: q.scales.length,
  });
  if (q.scales.dtype !== computeDtype) {
    scales = g.op(
      'Cast',
      [scales],
      { to: CAST_TO[computeDtype] },
      { name: `${name}.scales.${computeDtype}` },
    );
  }
  return { data, scales, rows, cols, bits, blockSize: q.blockSize };
}

/**
 * MatMulNBits accuracy_level: 'int8' (4) lets the CPU quantize each block of x to int8 and use
 * integer dot products (VNNI): 1.6x (int4) to 50x (int8) faster than 'float' (0) at batch 1 on
 * this project's CPU. The CUDA kernel ignores it. Its rounding error is part of the derived
 * tolerance (test/node/quant/).
 */
export type QuantizedActivations = 'int8' | 'float';

/** y = x · Wᵀ for x [rows, K] -> [rows, N]. */
export function quantizedLinear(
  b: GraphBuilder,
  x: string,
  w: QuantizedWeight,
  name: string,
  activations: QuantizedActivations,
): string {
  return b.op(
    'MatMulNBits',
    [x, w.data, w.scales],
    {
      K: w.cols,
      N: w.rows,
      bits: w.bits,
      block_size: w.blockSize,
      accuracy_level: activations === 'int8' ? 4 : 0,
    },
    { domain: 'com.microsoft', name },
  );
}
