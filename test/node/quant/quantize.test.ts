// The converter's block quantization and the MatMulNBits node the decoder emits for it:
// codes within half a step, the exact byte layout MatMulNBits reads, and the kernel agreeing
// with a float matmul on the dequantized weights (float activations) or on int8-rounded
// activations (accuracy level 4, the serving setting; the reference models of
// accuracy.test.ts round that way).

import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Xoshiro128 } from '../../../gpu-function/src/checkpoint/normal-random.ts';
import { float16BitsToFloat32Bits } from '../../../gpu-function/src/convert/dtype.ts';
import {
  dequantizeRows,
  isQuantizedTensor,
  type QuantScheme,
  qmax,
  quantizeRows,
} from '../../../gpu-function/src/convert/quantize.ts';
import { encodeModel, GraphBuilder } from '../../../gpu-function/src/model/onnx/index.ts';
import {
  type QuantizedActivations,
  quantizedLayout,
  quantizedLinear,
} from '../../../gpu-function/src/model/quantized-linear.ts';
import { emulateInt8Activations } from './int8-activations.ts';

function randomMatrix(rows: number, cols: number, seed: number, std = 0.02): Float32Array {
  const rng = new Xoshiro128(seed);
  // Sums of uniforms: roughly normal, with some large values so blocks differ in scale.
  return Float32Array.from({ length: rows * cols }, () => {
    let s = 0;
    for (let i = 0; i < 4; i++) s += rng.next() / 2 ** 32 - 0.5;
    return s * std * 1.7;
  });
}

function quantize(w: Float32Array, rows: number, cols: number, scheme: QuantScheme) {
  const layout = quantizedLayout(rows, cols, scheme.bits, scheme.blockSize);
  const data = new Uint8Array(layout.dataBytes);
  const scales =
    scheme.scaleDtype === 'float32'
      ? new Float32Array(layout.scaleCount)
      : new Uint16Array(layout.scaleCount);
  quantizeRows(w, rows, cols, scheme, data, scales);
  return { layout, data, scales, values: dequantizeRows(data, scales, rows, cols, scheme) };
}

const scaleValue = (scales: Float32Array | Uint16Array, i: number) =>
  scales instanceof Float32Array
    ? scales[i]!
    : new Float32Array(Uint32Array.of(float16BitsToFloat32Bits(scales[i]!)).buffer)[0]!;

describe('quantizeRows', () => {
  const schemes: QuantScheme[] = [
    { bits: 4, blockSize: 32, scaleDtype: 'float32' },
    { bits: 8, blockSize: 32, scaleDtype: 'float32' },
    { bits: 4, blockSize: 16, scaleDtype: 'float16' },
    { bits: 8, blockSize: 64, scaleDtype: 'float16' },
  ];

  it.each(schemes)(
    '$bits bits, blocks of $blockSize, $scaleDtype scales: scale = max|w|/qmax, every value within half a step',
    (scheme) => {
      const rows = 7;
      const cols = 200; // not a multiple of any block size: the last block is padded
      const w = randomMatrix(rows, cols, scheme.bits + scheme.blockSize);
      const { layout, scales, values } = quantize(w, rows, cols, scheme);
      expect(layout.blocks).toBe(Math.ceil(cols / scheme.blockSize));
      let worst = 0;
      for (let r = 0; r < rows; r++) {
        for (let b = 0; b < layout.blocks; b++) {
          const s = scaleValue(scales, r * layout.blocks + b);
          const start = b * scheme.blockSize;
          const end = Math.min(cols, start + scheme.blockSize);
          const amax = Math.max(...w.subarray(r * cols + start, r * cols + end).map(Math.abs));
          // float16 scales are the float32 one rounded: relative error below 2^-11
          expect(Math.abs(s - amax / qmax(scheme.bits)) / s).toBeLessThan(
            scheme.scaleDtype === 'float16' ? 5e-4 : 1e-7,
          );
          for (let c = start; c < end; c++) {
            worst = Math.max(worst, Math.abs(values[r * cols + c]! - w[r * cols + c]!) / (s / 2));
          }
        }
      }
      expect(worst).toBeLessThanOrEqual(1 + 1e-6);
      expect(worst).toBeGreaterThan(0.9); // rounding does use (nearly) the whole half step
    },
  );

  it('lays codes out as MatMulNBits reads them: low nibble first, offset 2^(bits-1), zero padding', () => {
    // One row of 3 values, blocks of 16: max 0.7 gives s = 0.1, codes 7, -3, 1.
    const w = Float32Array.of(0.7, -0.3, 0.1);
    const four = quantize(w, 1, 3, { bits: 4, blockSize: 16, scaleDtype: 'float32' });
    expect(four.scales[0]).toBeCloseTo(0.1, 7);
    expect([...four.data]).toEqual([
      (7 + 8) | ((-3 + 8) << 4),
      (1 + 8) | (8 << 4),
      ...new Array(6).fill(0x88),
    ]);
    const eight = quantize(Float32Array.of(1.27, -0.5), 1, 2, {
      bits: 8,
      blockSize: 16,
      scaleDtype: 'float32',
    });
    expect([...eight.data]).toEqual([127 + 128, -50 + 128, ...new Array(14).fill(128)]);
  });

  it('a block of zeros gets scale 0 and zero codes; a non-finite value is refused', () => {
    const { data, scales } = quantize(new Float32Array(32), 1, 32, {
      bits: 4,
      blockSize: 32,
      scaleDtype: 'float32',
    });
    expect(scales[0]).toBe(0);
    expect(data.every((b) => b === 0x88)).toBe(true);
    const bad = new Float32Array(32);
    bad[5] = Number.POSITIVE_INFINITY;
    expect(() => quantize(bad, 1, 32, { bits: 8, blockSize: 32, scaleDtype: 'float32' })).toThrow(
      /non-finite/,
    );
  });

  it('quantizes the projections and the LM head, nothing else', () => {
    const quantized = [
      'transformer.layers.0.attention.query_key_value.weight',
      'transformer.layers.31.attention.dense.weight',
      'transformer.layers.3.mlp.packed_input_proj.weight',
      'transformer.layers.3.mlp.out_proj.weight',
      'embed_out.weight',
    ];
    const kept = [
      'transformer.embed_in.weight',
      'transformer.layers.0.post_attention_layernorm.weight',
      'transformer.final_layer_norm.bias',
      'transformer.layers.0.attention.rotary_emb.inv_freq',
    ];
    for (const name of quantized) expect(isQuantizedTensor(name), name).toBe(true);
    for (const name of kept) expect(isQuantizedTensor(name), name).toBe(false);
  });
});

describe('MatMulNBits as the decoder emits it (CPU)', () => {
  async function run(model: Uint8Array, x: Float32Array, rows: number, cols: number): Promise<Float32Array> {
    // Prepacked weights, as the engine opens a model (MatMulNBits' int8 path needs them).
    const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
    try {
      const out = await session.run({ x: new ort.Tensor('float32', x, [rows, cols]) });
      return out.y!.data as Float32Array;
    } finally {
      await session.release();
    }
  }

  function quantizedGraph(
    q: ReturnType<typeof quantize>,
    N: number,
    K: number,
    scheme: QuantScheme,
    activations: QuantizedActivations,
  ) {
    const g = new GraphBuilder('q');
    const x = g.input('x', 'float32', ['m', K]);
    const data = g.initializer('w', 'uint8', [N, q.layout.blocks, q.layout.blobBytes], q.data);
    let scales = g.initializer('w.scales', scheme.scaleDtype, [q.layout.scaleCount], q.scales);
    if (scheme.scaleDtype !== 'float32') scales = g.op('Cast', [scales], { to: 1 });
    const weight = { data, scales, rows: N, cols: K, bits: scheme.bits, blockSize: scheme.blockSize };
    g.output('y', quantizedLinear(g, x, weight, 'proj', activations), 'float32', ['m', N]);
    return encodeModel(g.model());
  }

  function floatGraph(values: Float32Array, N: number, K: number, int8ActivationsBlock?: number) {
    const g = new GraphBuilder('f');
    const x = g.input('x', 'float32', ['m', K]);
    const w = g.initializer('w', 'float32', [N, K], values);
    g.output('y', g.op('Gemm', [x, w], { transB: 1 }), 'float32', ['m', N]);
    const model = g.model();
    return encodeModel(int8ActivationsBlock ? emulateInt8Activations(model, int8ActivationsBlock) : model);
  }

  const cases = [
    { bits: 4, M: 1, K: 256, N: 96, scaleDtype: 'float32' },
    { bits: 4, M: 9, K: 768, N: 64, scaleDtype: 'float16' },
    { bits: 8, M: 1, K: 256, N: 96, scaleDtype: 'float32' },
    { bits: 8, M: 9, K: 64, N: 160, scaleDtype: 'float32' },
  ] as const;

  it.each(cases)(
    '$bits bits, M $M, K $K, N $N, $scaleDtype scales',
    async ({ bits, M, K, N, scaleDtype }) => {
      const scheme: QuantScheme = { bits, blockSize: 32, scaleDtype };
      const q = quantize(randomMatrix(N, K, K + N), N, K, scheme);
      const x = randomMatrix(M, K, 99, 1);
      const exact = await run(floatGraph(q.values, N, K), x, M, K);
      const floatActs = await run(quantizedGraph(q, N, K, scheme, 'float'), x, M, K);
      const roundedExact = await run(floatGraph(q.values, N, K, 32), x, M, K);
      const int8Acts = await run(quantizedGraph(q, N, K, scheme, 'int8'), x, M, K);
      const maxDiff = (a: Float32Array, b: Float32Array) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
      expect(maxDiff(floatActs, exact)).toBeLessThan(1e-5);
      expect(maxDiff(int8Acts, roundedExact)).toBeLessThan(1e-5);
      // The int8 rounding of activations is visible (the comparisons above can fail).
      expect(maxDiff(int8Acts, exact)).toBeGreaterThan(1e-4);
    },
  );
});
