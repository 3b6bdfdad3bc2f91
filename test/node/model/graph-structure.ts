// Shared by the structure tests of the forward and generation graphs: the ops that have a CUDA
// kernel, and weight maps that let a graph be built without any weight bytes.

import { expectedTensors, type ModelConfig } from '../../../gpu-function/src/model/config.ts';
import type { WeightLocation } from '../../../gpu-function/src/model/decoder.ts';
import type { GraphProto } from '../../../gpu-function/src/model/onnx/index.ts';

// Ops with a CUDA kernel in onnxruntime (its operator kernel list; ../shared/notes/onnxruntime-node.md).
export const CUDA_KERNEL_OPS: ReadonlySet<string> = new Set([
  ...['Add', 'And', 'ArgMax', 'Cast', 'Concat', 'ConstantOfShape', 'CumSum', 'Div', 'Equal', 'Exp', 'Expand'],
  ...['Gather', 'GatherElements', 'Gemm', 'Greater', 'Identity', 'If', 'LayerNormalization', 'Less', 'Log'],
  ...[
    'LessOrEqual',
    'LogSoftmax',
    'Loop',
    'MatMul',
    'Min',
    'Mul',
    'Neg',
    'Not',
    'Or',
    'Range',
    'ReduceMax',
    'ReduceMin',
  ],
  ...['ReduceSum', 'Reshape', 'ScatterElements', 'Shape', 'Sigmoid', 'Slice', 'Softmax', 'Split', 'Squeeze'],
  ...['Sub', 'TopK', 'Transpose', 'Unsqueeze', 'Where'],
  ...[
    'com.microsoft:MatMulNBits',
    'com.microsoft:MultiHeadAttention',
    'com.microsoft:RotaryEmbedding',
    'com.microsoft:SkipLayerNormalization',
  ],
]);

/** An op's name as CUDA_KERNEL_OPS lists it: `domain:type` for contrib ops. */
export const opKey = (n: GraphProto['nodes'][number]) => (n.domain ? `${n.domain}:${n.opType}` : n.opType);

/** Every tensor of `config` laid out back to back in one file (the bytes need not exist). */
export function fakeWeights(
  config: ModelConfig,
  dtype: WeightLocation['dtype'],
): Map<string, WeightLocation> {
  const size = dtype === 'float32' ? 4 : 2;
  const weights = new Map<string, WeightLocation>();
  let offset = 0;
  for (const [name, shape] of expectedTensors(config)) {
    const length = shape.reduce((a, b) => a * b, 1) * size;
    weights.set(name, { location: 'weights.bin', offset, length, dtype });
    offset += length;
  }
  return weights;
}
