// The generation graph's structure for the real 7B config, without running it: one model with
// the decoder only inside the Loop body, every op one the CUDA execution provider has a kernel
// for, and nothing but tokens and the cache leaving the graph.

import { describe, expect, it } from 'vitest';
import { expectedTensors, parseModelConfig } from '../../../gpu-function/src/model/config.ts';
import type { WeightLocation } from '../../../gpu-function/src/model/decoder.ts';
import { buildGenerationModel } from '../../../gpu-function/src/model/generation-graph.ts';
import { GEN, presentKeyName } from '../../../gpu-function/src/model/generation-io.ts';
import type { GraphProto } from '../../../gpu-function/src/model/onnx/index.ts';

// Ops with a CUDA kernel in onnxruntime (its operator kernel list; ../shared/notes/onnxruntime-node.md).
const CUDA_OPS = new Set([
  ...['Add', 'And', 'ArgMax', 'Cast', 'Concat', 'ConstantOfShape', 'CumSum', 'Div', 'Equal', 'Exp', 'Expand'],
  ...[
    'Gather',
    'GatherElements',
    'Gemm',
    'Greater',
    'Identity',
    'If',
    'LayerNormalization',
    'Less',
    'LessOrEqual',
  ],
  ...['Loop', 'MatMul', 'Min', 'Mul', 'Neg', 'Not', 'Or', 'Range', 'ReduceMax', 'ReduceMin', 'ReduceSum'],
  ...[
    'Reshape',
    'ScatterElements',
    'Shape',
    'Sigmoid',
    'Slice',
    'Softmax',
    'Split',
    'Squeeze',
    'Sub',
    'TopK',
  ],
  ...['Transpose', 'Unsqueeze', 'Where'],
  ...[
    'com.microsoft:MultiHeadAttention',
    'com.microsoft:RotaryEmbedding',
    'com.microsoft:SkipLayerNormalization',
  ],
]);

const config7b = parseModelConfig({ architectures: ['JapaneseStableLMAlphaForCausalLM'] });

function fakeWeights(dtype: WeightLocation['dtype']): Map<string, WeightLocation> {
  const size = dtype === 'float32' ? 4 : 2;
  const weights = new Map<string, WeightLocation>();
  let offset = 0;
  for (const [name, shape] of expectedTensors(config7b)) {
    const length = shape.reduce((a, b) => a * b, 1) * size;
    weights.set(name, { location: 'model.safetensors', offset, length, dtype });
    offset += length;
  }
  return weights;
}

const opKey = (n: GraphProto['nodes'][number]) => (n.domain ? `${n.domain}:${n.opType}` : n.opType);

/** Nodes of a graph and of every subgraph inside it (If branches). */
function allNodes(graph: GraphProto): GraphProto['nodes'] {
  return graph.nodes.flatMap((n) => [
    n,
    ...Object.values(n.attributes).flatMap((a) => (a.kind === 'graph' ? allNodes(a.value) : [])),
  ]);
}

function count(graph: GraphProto, op: string): number {
  return allNodes(graph).filter((n) => opKey(n) === op).length;
}

function loopBody(graph: GraphProto): GraphProto {
  const loops = graph.nodes.filter((n) => n.opType === 'Loop');
  expect(loops).toHaveLength(1);
  const body = loops[0]?.attributes.body;
  if (body?.kind !== 'graph') throw new Error('Loop without a body');
  return body.value;
}

describe('generation graph structure (7B config)', () => {
  it.each(['float16', 'float32'] as const)(
    '%s: one Loop holding the decoder; only CUDA-kernel ops',
    (dtype) => {
      const model = buildGenerationModel(config7b, fakeWeights(dtype), { dtype });
      const body = loopBody(model.graph);
      for (const node of [...model.graph.nodes, ...body.nodes])
        expect(CUDA_OPS, `op ${opKey(node)}`).toContain(opKey(node));
      const L = config7b.numLayers;
      expect(model.graph.nodes.filter((n) => n.opType === 'Gemm')).toHaveLength(0); // the prompt goes through the body too
      expect(count(body, 'Gemm')).toBe(4 * L + 1); // 4 per layer + the LM head, applied to the last row only
      expect(count(body, 'com.microsoft:MultiHeadAttention')).toBe(L);
      expect(count(body, 'com.microsoft:RotaryEmbedding')).toBe(2 * L); // 7B rotary width 32: the fused kernel
      expect(count(body, 'TopK')).toBe(1); // only in the branch for top-k / top-p rows
      // Weights are initializers of the main graph only (one copy on the device).
      expect(body.initializers.every((t) => !t.external)).toBe(true);
      expect(model.graph.initializers.filter((t) => t.external)).toHaveLength(expectedTensors(config7b).size);
    },
  );

  it('only tokens and the cache leave the graph (no logits)', () => {
    const model = buildGenerationModel(config7b, fakeWeights('float16'), { dtype: 'float16' });
    const outputs = model.graph.outputs.map((o) => o.name);
    expect(outputs).toHaveLength(2 * config7b.numLayers + 1);
    expect(outputs).toContain(GEN.tokens);
    expect(outputs).toContain(presentKeyName(config7b.numLayers - 1));
    const present = model.graph.outputs.find((o) => o.name === presentKeyName(0));
    expect(present?.dtype).toBe('float16');
  });
});
