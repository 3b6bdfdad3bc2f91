// A small typed builder for ONNX graphs that reads like the math:
//
//   const g = new GraphBuilder('forward');
//   const x = g.input('x', 'float32', ['batch', 'seq', 64]);
//   const w = g.externalInitializer('w', 'float32', [64, 64], { location: 'weights.bin', offset: 0, length: 16384 });
//   const y = g.op('MatMul', [x, w], {}, { name: 'proj' });        // returns the output's name
//   const n = g.op('LayerNormalization', [y, g.ones('float32', 64), g.zeros('float32', 64)],
//                  { axis: -1, epsilon: 1e-5 });
//   const [q, k] = g.ops('Split', [n, g.int64s([32, 32])], 2, { axis: -1 });
//   const r = g.op('RotaryEmbedding', [...], { interleaved: 0 }, { domain: 'com.microsoft' });
//   g.output('y', n, 'float32', ['batch', 'seq', 64]);               // Identity when names differ
//   const bytes = encodeModel(g.model());                            // .onnx file contents
//
// Loop/If bodies: `const body = g.subgraph('step')` shares the parent's name scope, so
// nothing in a body can shadow a main-graph name (weights stay visible inside the body);
// pass it as an attribute: g.ops('Loop', [...], n, { body }).
//
// Attribute values are typed by shape: an integer number is INT, any other number FLOAT,
// an all-integer number[] INTS (else FLOATS), string STRING, string[] STRINGS, a
// GraphBuilder GRAPH. Force a type with attr.float(1), attr.floats([1, 2]), attr.ints([]).

import {
  type AttributeValue,
  type Dim,
  DTYPE_SIZE,
  type DType,
  type ExternalData,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.ts';

export type { Dim, DType, ExternalData } from './proto.ts';

export const attr = {
  float: (value: number): AttributeValue => ({ kind: 'float', value }),
  floats: (value: number[]): AttributeValue => ({ kind: 'floats', value }),
  int: (value: number): AttributeValue => ({ kind: 'int', value }),
  ints: (value: number[]): AttributeValue => ({ kind: 'ints', value }),
  string: (value: string): AttributeValue => ({ kind: 'string', value }),
};

export type AttrInput = number | number[] | string | string[] | GraphBuilder | AttributeValue;

/** Opset imports every model of this project uses: ONNX opset 17 (LayerNormalization) and the contrib ops. */
export const DEFAULT_OPSETS: Record<string, number> = { '': 17, 'com.microsoft': 1 };
/** IR version matching opset 17. */
export const IR_VERSION = 8;

export interface OpOptions {
  /** 'com.microsoft' for contrib ops; default the ONNX domain. */
  domain?: string;
  /** Readable hint for the output name(s); made unique with a suffix when taken. */
  name?: string;
  /** Indices of optional outputs to leave unproduced (named '' in the node). */
  omit?: number[];
}

/** Names already used anywhere in one model (main graph and every body). */
class NameScope {
  private used = new Set<string>();

  claim(name: string): string {
    if (this.used.has(name)) throw new Error(`ONNX name '${name}' is already defined in this model`);
    this.used.add(name);
    return name;
  }

  fresh(hint: string): string {
    if (!this.used.has(hint)) return this.claim(hint);
    for (let i = 1; ; i++) {
      const candidate = `${hint}_${i}`;
      if (!this.used.has(candidate)) return this.claim(candidate);
    }
  }
}

function toAttribute(name: string, v: AttrInput): AttributeValue {
  if (v instanceof GraphBuilder) return { kind: 'graph', value: v.build() };
  if (typeof v === 'number') return Number.isInteger(v) ? attr.int(v) : attr.float(v);
  if (typeof v === 'string') return attr.string(v);
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'string')) return { kind: 'strings', value: v as string[] };
    const nums = v as number[];
    return nums.every(Number.isInteger) ? attr.ints(nums) : attr.floats(nums);
  }
  if (typeof v === 'object' && v !== null && 'kind' in v) return v;
  throw new Error(`attribute '${name}': unsupported value`);
}

function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export class GraphBuilder {
  readonly name: string;
  private readonly names: NameScope;
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly constants = new Map<string, string>();

  constructor(name = 'main', names: NameScope = new NameScope()) {
    this.name = name;
    this.names = names;
  }

  /** A graph for a Loop/If body; it shares this graph's names so it cannot shadow them. */
  subgraph(name: string): GraphBuilder {
    return new GraphBuilder(name, this.names);
  }

  input(name: string, dtype: DType, dims?: Dim[]): string {
    this.inputs.push({ name: this.names.claim(name), dtype, dims });
    return name;
  }

  /** Declares graph output `name` holding `value` (an Identity node links them if the names differ). */
  output(name: string, value: string, dtype: DType, dims?: Dim[]): string {
    if (value !== name) {
      this.nodes.push(this.node('Identity', [value], [this.names.claim(name)], {}, ''));
    }
    this.outputs.push({ name, dtype, dims });
    return name;
  }

  /** A weight stored in the model file. */
  initializer(name: string, dtype: DType, dims: number[], data: ArrayBufferView): string {
    return this.embed(this.names.claim(name), dtype, dims, data);
  }

  private embed(name: string, dtype: DType, dims: number[], data: ArrayBufferView): string {
    const raw = bytesOf(data);
    const expected = dims.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
    if (raw.byteLength !== expected) {
      throw new Error(
        `initializer '${name}': ${raw.byteLength} bytes for ${dtype}[${dims}] (want ${expected})`,
      );
    }
    this.initializers.push({ name, dtype, dims, raw });
    return name;
  }

  /** A weight whose bytes sit in a file beside the model (location is relative to its folder). */
  externalInitializer(name: string, dtype: DType, dims: number[], external: ExternalData): string {
    const expected = dims.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
    if (external.length !== expected) {
      throw new Error(
        `initializer '${name}': ${external.length} bytes for ${dtype}[${dims}] (want ${expected})`,
      );
    }
    this.initializers.push({ name: this.names.claim(name), dtype, dims, external });
    return name;
  }

  /** A small embedded constant; equal constants within one graph share one initializer. */
  constant(dtype: DType, dims: number[], values: ArrayLike<number> | ArrayLike<bigint>): string {
    const key = `${dtype}[${dims}]:${Array.from(values as ArrayLike<number>).join(',')}`;
    const known = this.constants.get(key);
    if (known) return known;
    const data = typedArrayFor(dtype, values);
    const name = this.embed(this.names.fresh(`const_${this.constants.size}`), dtype, dims, data);
    this.constants.set(key, name);
    return name;
  }

  /** 1-D int64 constant, the usual shape/axes/starts argument. */
  int64s(values: number[]): string {
    return this.constant('int64', [values.length], values);
  }

  /** Scalar constant (rank 0). */
  scalar(dtype: DType, value: number): string {
    return this.constant(dtype, [], [value]);
  }

  ones(dtype: DType, n: number): string {
    return this.constant(dtype, [n], new Array<number>(n).fill(1));
  }

  zeros(dtype: DType, n: number): string {
    return this.constant(dtype, [n], new Array<number>(n).fill(0));
  }

  /** A tensor of the runtime shape `shape` (a 1-D int64 value) filled with `value` (ConstantOfShape). */
  filled(shape: string, dtype: DType, value: number): string {
    const raw = bytesOf(typedArrayFor(dtype, [value]));
    return this.op('ConstantOfShape', [shape], {
      value: { kind: 'tensor', value: { name: 'value', dtype, dims: [1], raw } },
    });
  }

  /** Adds one node and returns its single output. Pass '' for an omitted optional input. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrInput> = {}, opts: OpOptions = {}): string {
    const [out] = this.ops(opType, inputs, 1, attrs, opts);
    return out as string;
  }

  /** Adds one node with `outputCount` outputs and returns their names. */
  ops(
    opType: string,
    inputs: string[],
    outputCount: number,
    attrs: Record<string, AttrInput> = {},
    opts: OpOptions = {},
  ): string[] {
    const hint = opts.name ?? opType.toLowerCase();
    const outputs = Array.from({ length: outputCount }, (_, i) => {
      if (opts.omit?.includes(i)) return '';
      return this.names.fresh(outputCount === 1 ? hint : `${hint}.${i}`);
    });
    const attributes: Record<string, AttributeValue> = {};
    for (const [k, v] of Object.entries(attrs)) attributes[k] = toAttribute(k, v);
    this.nodes.push(this.node(opType, inputs, outputs, attributes, opts.domain ?? ''));
    return outputs;
  }

  private node(
    opType: string,
    inputs: string[],
    outputs: string[],
    attributes: Record<string, AttributeValue>,
    domain: string,
  ): NodeProto {
    return {
      opType,
      domain,
      name: this.names.fresh(`n.${outputs.find((o) => o !== '') ?? opType}`),
      inputs,
      outputs,
      attributes,
    };
  }

  build(): GraphProto {
    return {
      name: this.name,
      nodes: [...this.nodes],
      initializers: [...this.initializers],
      inputs: [...this.inputs],
      outputs: [...this.outputs],
    };
  }

  /** Wraps this graph as a model with the project's opsets. */
  model(opts: { opsets?: Record<string, number>; metadata?: Record<string, string> } = {}): ModelProto {
    return {
      irVersion: IR_VERSION,
      opsets: opts.opsets ?? DEFAULT_OPSETS,
      producerName: 'jslm-serve',
      graph: this.build(),
      metadata: opts.metadata,
    };
  }
}

function typedArrayFor(dtype: DType, values: ArrayLike<number> | ArrayLike<bigint>): ArrayBufferView {
  const nums = Array.from(values as ArrayLike<number | bigint>);
  switch (dtype) {
    case 'float32':
      return Float32Array.from(nums, Number);
    case 'float64':
      return Float64Array.from(nums, Number);
    case 'float16':
      return Uint16Array.from(nums, (v) => float32ToFloat16Bits(Number(v)));
    case 'int64':
      return BigInt64Array.from(nums, (v) => BigInt(v));
    case 'int32':
      return Int32Array.from(nums, Number);
    case 'int8':
      return Int8Array.from(nums, Number);
    case 'uint8':
    case 'bool':
      return Uint8Array.from(nums, Number);
    case 'bfloat16':
      throw new Error('bfloat16 constants are not supported');
  }
}

/** IEEE half-precision bits of x, rounded to nearest even. */
export function float32ToFloat16Bits(x: number): number {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  f32[0] = x;
  const bits = u32[0] as number;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow to inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit bit in and round.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1) === 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1) === 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}
