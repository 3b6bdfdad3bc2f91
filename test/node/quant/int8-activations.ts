// MatMulNBits with accuracy_level 4 (the serving setting on the CPU) rounds its input x to int8
// per block of the weight's block size before the integer dot products: scale max|x|/127, codes
// round-half-even(x · 127/max|x|) (onnxruntime's MLAS). `emulateInt8Activations` rewrites a
// float graph so every linear layer (every Gemm) does the same with standard ops, for reference
// models whose only difference from serving is then in the weights.

import type { GraphProto, ModelProto, TensorProto } from '../../../gpu-function/src/model/onnx/index.ts';

function constant(name: string, dtype: 'float32' | 'int64', dims: number[], values: number[]): TensorProto {
  const data = dtype === 'float32' ? Float32Array.from(values) : BigInt64Array.from(values.map(BigInt));
  return { name, dtype, dims, raw: new Uint8Array(data.buffer) };
}

/** Rounds the input of every Gemm (every linear layer of the float graph) to int8 per block. */
export function emulateInt8Activations(model: ModelProto, blockSize: number): ModelProto {
  const g: GraphProto = model.graph;
  const dims = new Map(g.initializers.map((t) => [t.name, t.dims]));
  const extra: TensorProto[] = [
    constant('emul.127', 'float32', [], [127]),
    constant('emul.0', 'float32', [], [0]),
  ];
  const nodes: GraphProto['nodes'] = [];
  let i = 0;
  const node = (
    opType: string,
    inputs: string[],
    attributes: GraphProto['nodes'][number]['attributes'] = {},
  ) => {
    const out = `emul.node.${i++}`;
    nodes.push({ opType, domain: '', name: out, inputs, outputs: [out], attributes });
    return out;
  };
  for (const n of g.nodes) {
    if (n.opType === 'Gemm') {
      const K = dims.get(n.inputs[1] as string)?.[1];
      if (!K || K % blockSize !== 0) throw new Error(`Gemm ${n.name}: weight width ${K} is not whole blocks`);
      const blocksShape = `emul.shape.${K}.blocks`;
      const rowsShape = `emul.shape.${K}.rows`;
      if (!dims.has(blocksShape)) {
        extra.push(constant(blocksShape, 'int64', [3], [-1, K / blockSize, blockSize]));
        extra.push(constant(rowsShape, 'int64', [2], [-1, K]));
        dims.set(blocksShape, [3]);
      }
      const x = node('Reshape', [n.inputs[0] as string, blocksShape]);
      const amax = node('ReduceMax', [node('Abs', [x])], {
        axes: { kind: 'ints', value: [-1] },
        keepdims: { kind: 'int', value: 1 },
      });
      const inv = node('Where', [
        node('Greater', [amax, 'emul.0']),
        node('Div', ['emul.127', amax]),
        'emul.0',
      ]);
      const scale = node('Div', [amax, 'emul.127']);
      const rounded = node('Mul', [node('Round', [node('Mul', [x, inv])]), scale]);
      nodes.push({ ...n, inputs: [node('Reshape', [rounded, rowsShape]), ...n.inputs.slice(1)] });
    } else nodes.push(n);
  }
  return { ...model, graph: { ...g, nodes, initializers: [...g.initializers, ...extra] } };
}
