// The generation graph's structure for the real 7B config, without running it: one model with
// the decoder only inside the Loop body, every op one the CUDA execution provider has a kernel
// for, and nothing but tokens and the cache leaving the graph.

import { describe, expect, it } from 'vitest';
import { expectedTensors, parseModelConfig } from '../../../gpu-function/src/model/config.ts';
import { buildGenerationModel } from '../../../gpu-function/src/model/generation-graph.ts';
import { GEN, LOGPROB_TOP_K, presentKeyName } from '../../../gpu-function/src/model/generation-io.ts';
import type { GraphProto } from '../../../gpu-function/src/model/onnx/index.ts';
import { CUDA_KERNEL_OPS, fakeWeights, opKey } from '../model/graph-structure.ts';

const config7b = parseModelConfig({ architectures: ['JapaneseStableLMAlphaForCausalLM'] });

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
      const model = buildGenerationModel(config7b, fakeWeights(config7b, dtype), { dtype });
      const body = loopBody(model.graph);
      for (const node of [...model.graph.nodes, ...body.nodes])
        expect(CUDA_KERNEL_OPS, `op ${opKey(node)}`).toContain(opKey(node));
      const L = config7b.numLayers;
      expect(model.graph.nodes.filter((n) => n.opType === 'Gemm')).toHaveLength(0); // the prompt goes through the body too
      // 4 per layer + the LM head on the last row, + the LM head on every row in the branch
      // taken only when the prompt is scored.
      expect(count(body, 'Gemm')).toBe(4 * L + 2);
      expect(count(body, 'com.microsoft:MultiHeadAttention')).toBe(L);
      expect(count(body, 'com.microsoft:RotaryEmbedding')).toBe(2 * L); // 7B rotary width 32: the fused kernel
      // The sampler's (only in the branch for top-k / top-p rows), the step's top log-probabilities,
      // and the scored prompt's.
      expect(count(body, 'TopK')).toBe(3);
      // Weights are initializers of the main graph only (one copy on the device).
      expect(body.initializers.every((t) => !t.external)).toBe(true);
      expect(model.graph.initializers.filter((t) => t.external)).toHaveLength(expectedTensors(config7b).size);
    },
  );

  it('only tokens, their log-probabilities and the cache leave the graph (no logits)', () => {
    const model = buildGenerationModel(config7b, fakeWeights(config7b, 'float16'), { dtype: 'float16' });
    const outputs = model.graph.outputs.map((o) => o.name);
    const small = [
      GEN.tokens,
      GEN.tokenLogprobs,
      GEN.topLogprobs,
      GEN.topIds,
      GEN.promptLogprobs,
      GEN.promptTopLogprobs,
      GEN.promptTopIds,
    ];
    expect(outputs).toHaveLength(2 * config7b.numLayers + small.length);
    for (const name of small) expect(outputs).toContain(name);
    // None has a vocabulary-sized dimension: at most LOGPROB_TOP_K values a position.
    for (const o of model.graph.outputs.filter((x) => small.includes(x.name as never))) {
      expect((o.dims ?? []).every((d) => typeof d === 'string' || d <= LOGPROB_TOP_K)).toBe(true);
    }
    expect(outputs).toContain(presentKeyName(config7b.numLayers - 1));
    const present = model.graph.outputs.find((o) => o.name === presentKeyName(0));
    expect(present?.dtype).toBe('float16');
  });
});
