// ONNX messages as plain objects, and their encoding (field numbers from onnx.proto).
// Only what this project writes is modelled: tensors (raw or external data), typed value
// infos with symbolic dims, nodes with attributes (graph attributes for Loop/If bodies),
// graphs and models.

import { ProtoWriter } from './protobuf.ts';

/** Element types, named like onnxruntime-node's tensor types. */
export type DType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int64'
  | 'int32'
  | 'int8'
  | 'uint8'
  | 'bool';

/** TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
};

export const DTYPE_SIZE: Record<DType, number> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
  float16: 2,
  float64: 8,
  bfloat16: 2,
};

/** A dimension: a fixed size, or a symbolic name shared by inputs of equal size. */
export type Dim = number | string;

export interface ExternalData {
  /** File name relative to the model's folder. */
  location: string;
  offset: number;
  length: number;
}

export interface TensorProto {
  name: string;
  dtype: DType;
  dims: number[];
  /** Little-endian element bytes, stored in the model file. */
  raw?: Uint8Array;
  /** Or a reference to bytes in a file beside the model. */
  external?: ExternalData;
}

export interface ValueInfoProto {
  name: string;
  dtype: DType;
  /** undefined: rank unknown. */
  dims?: Dim[];
}

export type AttributeValue =
  | { kind: 'float'; value: number }
  | { kind: 'int'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; value: TensorProto }
  | { kind: 'graph'; value: GraphProto }
  | { kind: 'floats'; value: number[] }
  | { kind: 'ints'; value: number[] }
  | { kind: 'strings'; value: string[] };

export interface NodeProto {
  opType: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, AttributeValue>;
}

export interface GraphProto {
  name: string;
  nodes: NodeProto[];
  initializers: TensorProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
}

export interface ModelProto {
  irVersion: number;
  opsets: Record<string, number>;
  producerName: string;
  graph: GraphProto;
  metadata?: Record<string, string>;
}

const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, tensor: 4, graph: 5, floats: 6, ints: 7, strings: 8 };

function writeTensor(w: ProtoWriter, t: TensorProto): void {
  for (const d of t.dims) w.varint(1, d);
  w.varint(2, ONNX_DTYPE[t.dtype]);
  w.string(8, t.name);
  if (t.raw && t.external) throw new Error(`tensor '${t.name}' has both raw and external data`);
  if (t.raw) w.bytes(9, t.raw);
  if (t.external) {
    const e = t.external;
    const entries: [string, string][] = [
      ['location', e.location],
      ['offset', String(e.offset)],
      ['length', String(e.length)],
    ];
    for (const [key, value] of entries) w.message(13, (m) => m.string(1, key).string(2, value));
    w.varint(14, 1); // data_location = EXTERNAL
  }
}

function writeValueInfo(w: ProtoWriter, v: ValueInfoProto): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.varint(1, ONNX_DTYPE[v.dtype]);
      if (v.dims) {
        const dims = v.dims;
        tensor.message(2, (shape) => {
          for (const d of dims) {
            shape.message(1, (dim) => (typeof d === 'number' ? dim.varint(1, d) : dim.string(2, d)));
          }
        });
      }
    }),
  );
}

function writeAttribute(w: ProtoWriter, name: string, a: AttributeValue): void {
  w.string(1, name);
  w.varint(20, ATTRIBUTE_TYPE[a.kind]);
  switch (a.kind) {
    case 'float':
      w.float(2, a.value);
      break;
    case 'int':
      w.varint(3, a.value);
      break;
    case 'string':
      w.string(4, a.value);
      break;
    case 'tensor':
      w.message(5, (m) => writeTensor(m, a.value));
      break;
    case 'graph':
      w.message(6, (m) => writeGraph(m, a.value));
      break;
    case 'floats':
      for (const f of a.value) w.float(7, f);
      break;
    case 'ints':
      for (const i of a.value) w.varint(8, i);
      break;
    case 'strings':
      for (const s of a.value) w.string(9, s);
      break;
  }
}

function writeNode(w: ProtoWriter, n: NodeProto): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const [name, a] of Object.entries(n.attributes)) w.message(5, (m) => writeAttribute(m, name, a));
  if (n.domain) w.string(7, n.domain);
}

function writeGraph(w: ProtoWriter, g: GraphProto): void {
  for (const n of g.nodes) w.message(1, (m) => writeNode(m, n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, (m) => writeTensor(m, t));
  for (const v of g.inputs) w.message(11, (m) => writeValueInfo(m, v));
  for (const v of g.outputs) w.message(12, (m) => writeValueInfo(m, v));
}

/** Serialises a model to the bytes of an .onnx file. */
export function encodeModel(model: ModelProto): Uint8Array {
  const w = new ProtoWriter();
  w.varint(1, model.irVersion);
  w.string(2, model.producerName);
  w.message(7, (m) => writeGraph(m, model.graph));
  for (const [domain, version] of Object.entries(model.opsets)) {
    w.message(8, (m) => m.string(1, domain).varint(2, version));
  }
  for (const [key, value] of Object.entries(model.metadata ?? {})) {
    w.message(14, (m) => m.string(1, key).string(2, value));
  }
  return w.finish();
}
