// The Japanese-StableLM-Alpha forward pass as ONNX nodes, readable top to bottom
// (spec: ../shared/ARCHITECTURE-japanese-stablelm-alpha.md):
//
//   h = embed_in[ids]
//   for each layer:  n = LN₀(h);  h = h + Attention(n) + MLP(γ ⊙ n + β)
//   hidden = LN(h; γ_final, β_final);  logits = hidden · embed_outᵀ
//
// `prepareDecoder` puts the weights and XPos tables into the main graph once; `step` emits one
// forward pass into any graph (the main graph, or a Loop body made with g.subgraph, which sees
// the main graph's values). Activations are kept as [B·T, H] rows so every linear layer is a
// single Gemm with transB=1: weights stay in the checkpoint's [out, in] layout, untouched.
// Block-quantized linear weights (manifest dtype int4/int8) become MatMulNBits nodes instead,
// which take the same [out, in] layout (quantized-linear.ts).

import type { ModelConfig } from './config.ts';
import { expectedTensors } from './config.ts';
import { DTYPE_SIZE, type DType, float32ToFloat16Bits, type GraphBuilder } from './onnx/index.ts';
import {
  type BlockQuantization,
  isQuantizedDtype,
  type QuantizedActivations,
  type QuantizedDtype,
  type QuantizedWeight,
  quantizedLinear,
  quantizedWeight,
} from './quantized-linear.ts';
import { xposTables } from './xpos-tables.ts';

export type ComputeDtype = 'float32' | 'float16';
export type WeightDtype = 'float32' | 'float16' | 'bfloat16';

/** Where a weight's bytes are, relative to the model folder (the converter's manifest entry). */
export interface WeightLocation {
  location: string;
  offset: number;
  length: number;
  /** int4/int8: block-quantized codes (linear layers only), with their scales in `quantization`. */
  dtype: WeightDtype | QuantizedDtype;
  quantization?: BlockQuantization;
}

export type WeightMap = ReadonlyMap<string, WeightLocation> | Readonly<Record<string, WeightLocation>>;

export interface DecoderOptions {
  /** Compute (and KV cache) type: float32 for the CPU, float16 for the GPU. Default float32. */
  dtype?: ComputeDtype;
  /** com.microsoft RotaryEmbedding ('fused') or standard ops; 'auto' fuses when R % 16 == 0. */
  rotary?: 'auto' | 'fused' | 'standard';
  /** com.microsoft MultiHeadAttention ('fused', default) or standard ops. */
  attention?: 'fused' | 'standard';
  /** Quantized linear layers: activations rounded to int8 per block ('int8', default) or not. */
  quantizedActivations?: QuantizedActivations;
}

export interface KeyValue {
  /** [B, N, S, D]: keys after rotary and XPos. */
  key: string;
  /** [B, N, S, D]: raw values. */
  value: string;
}

export interface StepInputs {
  /** int64 [B, T] */
  inputIds: string;
  /** int64 [B, T], each in [0, maxPositions) */
  positionIds: string;
  /** One entry per layer, compute dtype, [B, N, P, D]; P may be 0. */
  past: KeyValue[];
  /**
   * int64 [B, P + T]: 1 where the cache entry or new token is real, 0 where it is padding
   * (rows of different lengths in one batch). Padding gets no attention weight; without it
   * every entry is real.
   */
  attentionMask?: string;
}

export interface StepOutputs {
  /** Final layer norm output, [B, T, H] in the compute dtype. */
  hidden: string;
  /** Per layer, [B, N, P + T, D]. */
  present: KeyValue[];
}

export interface Decoder {
  config: ModelConfig;
  dtype: ComputeDtype;
  rotary: 'fused' | 'standard';
  attention: 'fused' | 'standard';
  /** Emits one forward pass into `g` (the graph prepareDecoder saw, or one of its subgraphs). */
  step(g: GraphBuilder, inputs: StepInputs): StepOutputs;
  /** LM head: [B, T, H] -> float32 logits [B, T, V]. */
  logits(g: GraphBuilder, hidden: string): string;
}

/** A linear layer's weight: a float initializer (Gemm) or a quantized one (MatMulNBits). */
type Projection = string | QuantizedWeight;

interface LayerWeights {
  qkv: Projection;
  dense: Projection;
  mlpGamma: string;
  mlpBeta: string;
  packedIn: Projection;
  out: Projection;
}

/** ONNX TensorProto codes used by Cast's `to`. */
const CAST_TO: Record<ComputeDtype, number> = { float32: 1, float16: 10 };
/** Most negative finite float32: masked scores get exactly zero weight, as in the reference. */
const MASK_VALUE = -3.4028234663852886e38;

function lookup(weights: WeightMap, name: string): WeightLocation | undefined {
  return weights instanceof Map ? weights.get(name) : (weights as Record<string, WeightLocation>)[name];
}

export function chooseRotary(
  config: ModelConfig,
  option: DecoderOptions['rotary'] = 'auto',
): 'fused' | 'standard' {
  if (option !== 'auto') return option;
  return config.rotaryDim % 16 === 0 ? 'fused' : 'standard';
}

function tableData(values: Float64Array, dtype: ComputeDtype): ArrayBufferView {
  return dtype === 'float32' ? Float32Array.from(values) : Uint16Array.from(values, float32ToFloat16Bits);
}

export function prepareDecoder(
  g: GraphBuilder,
  config: ModelConfig,
  weights: WeightMap,
  options: DecoderOptions = {},
): Decoder {
  const dtype = options.dtype ?? 'float32';
  const rotary = chooseRotary(config, options.rotary);
  const attention = options.attention ?? 'fused';
  const { hiddenSize: H, numHeads: N, headSize: D, rotaryDim: R, intermediateSize: I } = config;
  const eps = config.layerNormEps;

  // Every weight becomes an external initializer under its checkpoint name. Weights stored in
  // another type get one Cast here in the main graph, so a Loop body never repeats it.
  const rawWeight = (name: string, shape: number[]): { name: string; dtype: WeightDtype } => {
    const loc = lookup(weights, name);
    if (!loc) throw new Error(`weights: missing tensor '${name}'`);
    if (isQuantizedDtype(loc.dtype)) {
      throw new Error(`weights: '${name}' is ${loc.dtype}; only linear layers may be quantized`);
    }
    const bytes = shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[loc.dtype as DType];
    if (loc.length !== bytes) {
      throw new Error(`weights: '${name}' has ${loc.length} bytes; ${loc.dtype}[${shape}] needs ${bytes}`);
    }
    g.externalInitializer(name, loc.dtype, shape, {
      location: loc.location,
      offset: loc.offset,
      length: loc.length,
    });
    return { name, dtype: loc.dtype as WeightDtype };
  };
  const weight = (name: string, shape: number[]): string => {
    const w = rawWeight(name, shape);
    if (w.dtype === dtype) return w.name;
    return g.op('Cast', [w.name], { to: CAST_TO[dtype] }, { name: `${name}.${dtype}` });
  };
  const projection = (name: string, shape: number[]): Projection => {
    const loc = lookup(weights, name);
    if (loc && isQuantizedDtype(loc.dtype)) {
      return quantizedWeight(g, name, shape, { ...loc, dtype: loc.dtype }, dtype);
    }
    return weight(name, shape);
  };
  const activations = options.quantizedActivations ?? 'int8';

  const shapes = expectedTensors(config);
  const shapeOf = (name: string): number[] => shapes.get(name) as number[];
  // The embedding table is only gathered from: cast the gathered rows, not the whole table.
  const embedIn = rawWeight('transformer.embed_in.weight', shapeOf('transformer.embed_in.weight'));
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const p = `transformer.layers.${l}`;
    const w = (suffix: string) => weight(`${p}.${suffix}`, shapeOf(`${p}.${suffix}`));
    const proj = (suffix: string) => projection(`${p}.${suffix}`, shapeOf(`${p}.${suffix}`));
    layers.push({
      qkv: proj('attention.query_key_value.weight'),
      dense: proj('attention.dense.weight'),
      mlpGamma: w('post_attention_layernorm.weight'),
      mlpBeta: w('post_attention_layernorm.bias'),
      packedIn: proj('mlp.packed_input_proj.weight'),
      out: proj('mlp.out_proj.weight'),
    });
  }
  const finalGamma = weight('transformer.final_layer_norm.weight', [H]);
  const finalBeta = weight('transformer.final_layer_norm.bias', [H]);
  const embedOut = projection('embed_out.weight', shapeOf('embed_out.weight'));

  const tables = xposTables(config);
  const table = (name: string, values: Float64Array) =>
    g.initializer(name, dtype, [tables.positions, tables.halfDim], tableData(values, dtype));
  const cosQ = table('xpos.cos_q', tables.cosQ);
  const sinQ = table('xpos.sin_q', tables.sinQ);
  const cosK = table('xpos.cos_k', tables.cosK);
  const sinK = table('xpos.sin_k', tables.sinK);
  const ones = g.ones(dtype, H);
  const zeros = g.zeros(dtype, H);

  const linear = (b: GraphBuilder, x: string, w: Projection, name: string) =>
    typeof w === 'string'
      ? b.op('Gemm', [x, w], { transB: 1 }, { name })
      : quantizedLinear(b, x, w, name, activations);

  function step(b: GraphBuilder, inputs: StepInputs): StepOutputs {
    if (inputs.past.length !== config.numLayers) {
      throw new Error(`decoder step: ${inputs.past.length} past entries for ${config.numLayers} layers`);
    }
    const batchSeq = b.op('Shape', [inputs.inputIds], {}, { name: 'batch_seq' }); // [B, T]
    const shapeBTH = b.op('Concat', [batchSeq, b.int64s([H])], { axis: 0 });
    const shapeBTNx3D = b.op('Concat', [batchSeq, b.int64s([N, 3 * D])], { axis: 0 });

    let embedded = b.op('Gather', [embedIn.name, inputs.inputIds], { axis: 0 }, { name: 'embedded' });
    if (embedIn.dtype !== dtype) embedded = b.op('Cast', [embedded], { to: CAST_TO[dtype] });
    let h = b.op('Reshape', [embedded, b.int64s([-1, H])], {}, { name: 'h0' }); // [B·T, H]

    const rope =
      rotary === 'fused' ? fusedRotary(b, inputs.positionIds) : standardRotary(b, inputs.positionIds);
    const mask =
      attention === 'standard'
        ? standardMask(b, inputs.inputIds, inputs.past[0]?.key as string, inputs.attentionMask)
        : '';
    // MultiHeadAttention takes padding as key_padding_mask [B, P + T] (int32, 1 = attend).
    const keyPadding =
      attention === 'fused' && inputs.attentionMask
        ? b.op('Cast', [inputs.attentionMask], { to: 6 }, { name: 'key_padding_mask' })
        : '';

    // LN₀ of the first layer's input; later ones come out of the residual SkipLayerNormalization.
    let normed = b.op('LayerNormalization', [h, ones, zeros], { axis: -1, epsilon: eps }, { name: 'l0.ln' });
    const present: KeyValue[] = [];
    let hidden = '';
    for (let l = 0; l < config.numLayers; l++) {
      const w = layers[l] as LayerWeights;
      const past = inputs.past[l] as KeyValue;
      const at = `l${l}`;

      // Attention branch on LN₀(h). QKV rows are laid out [head, {q, k, v}, D] (spec §5.1).
      const qkv = b.op('Reshape', [linear(b, normed, w.qkv, `${at}.qkv`), shapeBTNx3D]); // [B, T, N, 3D]
      const [q, k, v] = b.ops('Split', [qkv, b.int64s([D, D, D])], 3, { axis: -1 }, { name: `${at}.qkv` });
      const qRot = rope(q as string, cosQ, sinQ, `${at}.q_rot`); // [B, T, H]
      const kRot = rope(k as string, cosK, sinK, `${at}.k_rot`);
      const v3 = b.op('Reshape', [v as string, shapeBTH], {}, { name: `${at}.v` });
      const attended =
        attention === 'fused'
          ? fusedAttention(b, qRot, kRot, v3, past, keyPadding, at)
          : standardAttention(b, qRot, kRot, v3, past, mask, shapeBTH, at);
      present.push(attended.present);
      const attnOut = linear(
        b,
        b.op('Reshape', [attended.output, b.int64s([-1, H])]),
        w.dense,
        `${at}.attn_out`,
      );

      // MLP branch on LN(h; γ, β) = γ ⊙ LN₀(h) + β, side by side with attention.
      const mlpIn = b.op('Add', [b.op('Mul', [normed, w.mlpGamma]), w.mlpBeta], {}, { name: `${at}.mlp_in` });
      const z = linear(b, mlpIn, w.packedIn, `${at}.mlp_z`); // [B·T, 2I]
      const [value, gate] = b.ops('Split', [z, b.int64s([I, I])], 2, { axis: -1 }, { name: `${at}.mlp` });
      const silu = b.op(
        'Mul',
        [gate as string, b.op('Sigmoid', [gate as string])],
        {},
        { name: `${at}.silu` },
      );
      const mlpOut = linear(b, b.op('Mul', [value as string, silu]), w.out, `${at}.mlp_out`);

      // Parallel residual h + a + m, fused with the next layer norm (the final one after the last layer).
      const branches = b.op('Add', [attnOut, mlpOut], {}, { name: `${at}.branches` });
      if (l + 1 < config.numLayers) {
        const [nextNormed, nextH] = b
          .ops(
            'SkipLayerNormalization',
            [h, branches, ones, zeros],
            4,
            { epsilon: eps },
            { domain: 'com.microsoft', omit: [1, 2], name: `l${l + 1}.ln` },
          )
          .filter((o) => o !== '');
        normed = nextNormed as string;
        h = nextH as string;
      } else {
        const [finalNormed] = b.ops(
          'SkipLayerNormalization',
          [h, branches, finalGamma, finalBeta],
          1,
          { epsilon: eps },
          { domain: 'com.microsoft', name: 'final_ln' },
        );
        hidden = b.op('Reshape', [finalNormed as string, shapeBTH], {}, { name: 'hidden' });
      }
    }
    return { hidden, present };
  }

  // Rotary + XPos by com.microsoft RotaryEmbedding on [B, T, N·D] with explicit cos/sin caches.
  function fusedRotary(b: GraphBuilder, positionIds: string) {
    return (x: string, cos: string, sin: string, name: string): string => {
      const x3 = b.op('Reshape', [x, b.int64s([0, 0, H])]);
      return b.op(
        'RotaryEmbedding',
        [x3, positionIds, cos, sin],
        { interleaved: 0, num_heads: N, rotary_embedding_dim: R },
        { domain: 'com.microsoft', name },
      );
    };
  }

  // The same with standard ops: x[:R]·C + rotate_half(x[:R])·S, x[R:] unchanged. The rows of
  // each table are gathered once per step and shared by every layer.
  function standardRotary(b: GraphBuilder, positionIds: string) {
    const rows = new Map<string, string>();
    const gathered = (table: string): string => {
      let r = rows.get(table);
      if (!r) {
        const half = b.op('Gather', [table, positionIds], { axis: 0 }); // [B, T, R/2]
        const full = b.op('Concat', [half, half], { axis: -1 }); // [B, T, R]: tiled, entry c uses j = c mod R/2
        r = b.op('Unsqueeze', [full, b.int64s([2])], {}, { name: `${table}.rows` }); // [B, T, 1, R]
        rows.set(table, r);
      }
      return r;
    };
    return (x: string, cos: string, sin: string, name: string): string => {
      const slice = (from: number, to: number) =>
        b.op('Slice', [x, b.int64s([from]), b.int64s([to]), b.int64s([3])]);
      const rot = slice(0, R);
      const firstHalf = b.op('Slice', [rot, b.int64s([0]), b.int64s([R / 2]), b.int64s([3])]);
      const secondHalf = b.op('Slice', [rot, b.int64s([R / 2]), b.int64s([R]), b.int64s([3])]);
      const rotated = b.op('Concat', [b.op('Neg', [secondHalf]), firstHalf], { axis: -1 });
      const turned = b.op('Add', [b.op('Mul', [rot, gathered(cos)]), b.op('Mul', [rotated, gathered(sin)])]);
      const whole = R < D ? b.op('Concat', [turned, slice(R, D)], { axis: -1 }) : turned;
      return b.op('Reshape', [whole, b.int64s([0, 0, H])], {}, { name });
    };
  }

  // com.microsoft MultiHeadAttention: causal by cache index, past/present as [B, N, S, D].
  function fusedAttention(
    b: GraphBuilder,
    q: string,
    k: string,
    v: string,
    past: KeyValue,
    keyPadding: string,
    at: string,
  ) {
    const [output, key, value] = b.ops(
      'MultiHeadAttention',
      [q, k, v, '', keyPadding, '', past.key, past.value],
      3,
      { num_heads: N, unidirectional: 1 },
      { domain: 'com.microsoft', name: `${at}.attn` },
    );
    return { output: output as string, present: { key: key as string, value: value as string } };
  }

  // allowed[i, u] = u ≤ P + i for new token i and cache index u (spec §5.3), shared by all layers;
  // with padding also mask[b, u] = 1: [B, 1, T, S] then, else [T, S].
  function standardMask(b: GraphBuilder, inputIds: string, pastKey: string, padding?: string): string {
    const causal = causalMask(b, inputIds, pastKey);
    if (!padding) return causal;
    const real = b.op('Unsqueeze', [b.op('Cast', [padding], { to: 9 }), b.int64s([1, 2])]); // [B, 1, 1, S]
    return b.op('And', [causal, real], {}, { name: 'padded_causal_mask' });
  }

  function causalMask(b: GraphBuilder, inputIds: string, pastKey: string): string {
    const one = b.constant('int64', [], [1]);
    const zero = b.constant('int64', [], [0]);
    const pastLen = b.op('Squeeze', [b.op('Shape', [pastKey], { start: 2, end: 3 })]);
    const newLen = b.op('Squeeze', [b.op('Shape', [inputIds], { start: 1, end: 2 })]);
    const total = b.op('Add', [pastLen, newLen]);
    const rowsIdx = b.op('Range', [pastLen, total, one]); // [T]: cache index of each new token
    const cols = b.op('Range', [zero, total, one]); // [S]
    return b.op(
      'LessOrEqual',
      [b.op('Unsqueeze', [cols, b.int64s([0])]), b.op('Unsqueeze', [rowsIdx, b.int64s([1])])],
      {},
      { name: 'causal_mask' },
    ); // [T, S]
  }

  function standardAttention(
    b: GraphBuilder,
    q: string,
    k: string,
    v: string,
    past: KeyValue,
    mask: string,
    shapeBTH: string,
    at: string,
  ) {
    const heads = (x: string) =>
      b.op('Transpose', [b.op('Reshape', [x, b.int64s([0, 0, N, D])])], { perm: [0, 2, 1, 3] }); // [B, N, T, D]
    const keys = b.op('Concat', [past.key, heads(k)], { axis: 2 }, { name: `${at}.present_key` });
    const values = b.op('Concat', [past.value, heads(v)], { axis: 2 }, { name: `${at}.present_value` });
    const qScaled = b.op('Mul', [heads(q), b.scalar(dtype, 1 / Math.sqrt(D))]);
    const scores = b.op('MatMul', [qScaled, b.op('Transpose', [keys], { perm: [0, 1, 3, 2] })]); // [B, N, T, S]
    // The softmax runs in float32 whatever the compute type (as the reference does).
    const scores32 = dtype === 'float32' ? scores : b.op('Cast', [scores], { to: 1 });
    const masked = b.op('Where', [mask, scores32, b.scalar('float32', MASK_VALUE)]);
    let weights = b.op('Softmax', [masked], { axis: -1 });
    if (dtype !== 'float32') weights = b.op('Cast', [weights], { to: CAST_TO[dtype] });
    const o = b.op('Transpose', [b.op('MatMul', [weights, values])], { perm: [0, 2, 1, 3] }); // [B, T, N, D]
    return {
      output: b.op('Reshape', [o, shapeBTH], {}, { name: `${at}.attn` }),
      present: { key: keys, value: values },
    };
  }

  function logits(b: GraphBuilder, hidden: string): string {
    const rows = b.op('Reshape', [hidden, b.int64s([-1, H])]);
    let out = linear(b, rows, embedOut, 'lm_head'); // [B·T, V]
    if (dtype !== 'float32') out = b.op('Cast', [out], { to: 1 });
    const batchSeq = b.op('Slice', [b.op('Shape', [hidden]), b.int64s([0]), b.int64s([2])]);
    const shape = b.op('Concat', [batchSeq, b.int64s([config.vocabSize])], { axis: 0 });
    return b.op('Reshape', [out, shape], {}, { name: 'logits_bt' });
  }

  return { config, dtype, rotary, attention, step, logits };
}
