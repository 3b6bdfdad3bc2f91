// Graphs of a quantized 7B-shaped folder, without running them: every linear layer and the LM
// head is one MatMulNBits reading the checkpoint layout (no Gemm, no dequantized copy), every op
// has a CUDA kernel (the list the other structure tests use), for float32 and float16 compute.

import { describe, expect, it } from 'vitest';
import { isQuantizedTensor, QUANTIZED_DTYPE } from '../../../gpu-function/src/convert/quantize.ts';
import {
  expectedTensors,
  type ModelConfig,
  parseModelConfig,
} from '../../../gpu-function/src/model/config.ts';
import type { WeightLocation } from '../../../gpu-function/src/model/decoder.ts';
import { buildForwardModel } from '../../../gpu-function/src/model/forward-model.ts';
import { buildGenerationModel } from '../../../gpu-function/src/model/generation-graph.ts';
import type { GraphProto } from '../../../gpu-function/src/model/onnx/index.ts';
import { quantizedLayout } from '../../../gpu-function/src/model/quantized-linear.ts';
import { CUDA_KERNEL_OPS, opKey } from '../model/graph-structure.ts';

const config7b = parseModelConfig({ architectures: ['JapaneseStableLMAlphaForCausalLM'] });

/** A quantized folder's weight map (laid out back to back; the bytes need not exist). */
function quantizedWeights(config: ModelConfig, bits: 4 | 8, scaleDtype: 'float32' | 'float16') {
  const weights = new Map<string, WeightLocation>();
  let offset = 0;
  let scalesAt = 0;
  for (const [name, shape] of expectedTensors(config)) {
    if (isQuantizedTensor(name)) {
      const layout = quantizedLayout(shape[0]!, shape[1]!, bits, 32);
      const length = layout.scaleCount * (scaleDtype === 'float32' ? 4 : 2);
      weights.set(name, {
        location: 'weights.bin',
        offset,
        length: layout.dataBytes,
        dtype: QUANTIZED_DTYPE[bits],
        quantization: {
          blockSize: 32,
          scales: { location: 'scales.bin', offset: scalesAt, length, dtype: scaleDtype },
        },
      });
      offset += layout.dataBytes;
      scalesAt += length;
    } else {
      const dtype = name === 'transformer.embed_in.weight' ? 'float16' : 'float32';
      const length = shape.reduce((a, b) => a * b, 1) * (dtype === 'float16' ? 2 : 4);
      weights.set(name, { location: 'weights.bin', offset, length, dtype });
      offset += length;
    }
  }
  return weights;
}

function allNodes(graph: GraphProto): GraphProto['nodes'] {
  return graph.nodes.flatMap((n) => [
    n,
    ...Object.values(n.attributes).flatMap((a) => (a.kind === 'graph' ? allNodes(a.value) : [])),
  ]);
}

const L = config7b.numLayers;

describe('quantized graph structure (7B config)', () => {
  it.each([
    { bits: 4, dtype: 'float16', scales: 'float16' },
    { bits: 8, dtype: 'float32', scales: 'float32' },
    { bits: 4, dtype: 'float16', scales: 'float32' },
  ] as const)('$bits bits, $dtype compute, $scales scales: generation graph', ({ bits, dtype, scales }) => {
    const model = buildGenerationModel(config7b, quantizedWeights(config7b, bits, scales), { dtype });
    const nodes = allNodes(model.graph);
    for (const node of nodes) expect(CUDA_KERNEL_OPS, `op ${opKey(node)}`).toContain(opKey(node));
    expect(nodes.filter((n) => n.opType === 'Gemm')).toHaveLength(0);
    const matmuls = nodes.filter((n) => opKey(n) === 'com.microsoft:MatMulNBits');
    // 4 per layer + the LM head, + the LM head over every position when the prompt is scored.
    expect(matmuls).toHaveLength(4 * L + 2);
    const head = matmuls.find((n) => n.inputs[1] === 'embed_out.weight');
    expect(head?.attributes).toMatchObject({
      K: { value: 4096 },
      N: { value: 65536 },
      bits: { value: bits },
      block_size: { value: 32 },
      accuracy_level: { value: 4 },
    });
    // Codes are uint8 [N, blocks, blob] external data: the folder's bytes, no copy in the graph.
    const codes = model.graph.initializers.find((t) => t.name === 'embed_out.weight');
    expect(codes).toMatchObject({ dtype: 'uint8', dims: [65536, 128, bits * 4] });
    expect(codes?.external).toBeDefined();
    // Scales in another type than the compute type are cast once, in the main graph.
    const casts = model.graph.nodes.filter((n) => n.opType === 'Cast' && n.inputs[0]?.endsWith('.scales'));
    expect(casts).toHaveLength(scales === dtype ? 0 : 4 * L + 1);
  });

  it('forward graph: the same MatMulNBits, float activations on request', () => {
    const weights = quantizedWeights(config7b, 4, 'float32');
    const model = buildForwardModel(config7b, weights, { quantizedActivations: 'float' });
    const matmuls = model.graph.nodes.filter((n) => n.opType === 'MatMulNBits');
    expect(matmuls).toHaveLength(4 * L + 1);
    expect(
      matmuls.every(
        (n) => n.attributes.accuracy_level?.kind === 'int' && n.attributes.accuracy_level.value === 0,
      ),
    ).toBe(true);
  });

  it('refuses a quantized embedding or layer norm, and codes whose size does not fit the shape', () => {
    const weights = quantizedWeights(config7b, 4, 'float32');
    const head = weights.get('embed_out.weight')!;
    weights.set('transformer.embed_in.weight', head);
    expect(() => buildForwardModel(config7b, weights)).toThrow(
      /'transformer.embed_in.weight' is int4; only linear layers/,
    );
    const short = quantizedWeights(config7b, 4, 'float32');
    short.set('embed_out.weight', { ...head, length: head.length - 16 });
    expect(() => buildForwardModel(config7b, short)).toThrow(/'embed_out.weight' has \d+ bytes of codes/);
  });
});
