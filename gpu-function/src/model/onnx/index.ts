// ONNX writing: the graph builder (see builder.ts for usage) and the file encoder.

export type { AttrInput, OpOptions } from './builder.ts';
export { attr, DEFAULT_OPSETS, float32ToFloat16Bits, GraphBuilder, IR_VERSION } from './builder.ts';
export type { Dim, DType, ExternalData, GraphProto, ModelProto, TensorProto } from './proto.ts';
export { DTYPE_SIZE, encodeModel, ONNX_DTYPE } from './proto.ts';
