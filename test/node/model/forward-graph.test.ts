// The graph's structure, without running it: which path each head shape takes, that every op
// is one the CUDA execution provider has a kernel for, and that bad weight maps are refused.
// Built for the real 7B config (no weight bytes are needed to build a graph).

import { describe, expect, it } from 'vitest';
import { expectedTensors, parseModelConfig } from '../../../gpu-function/src/model/config.ts';
import {
  chooseRotary,
  type DecoderOptions,
  type WeightLocation,
} from '../../../gpu-function/src/model/decoder.ts';
import { buildForwardModel } from '../../../gpu-function/src/model/forward-model.ts';
import { encodeModel, type GraphProto } from '../../../gpu-function/src/model/onnx/index.ts';
import { CUDA_KERNEL_OPS, fakeWeights, opKey } from './graph-structure.ts';

const config7b = parseModelConfig({ architectures: ['JapaneseStableLMAlphaForCausalLM'] });
const configTiny = parseModelConfig({ hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4 });

function opTypes(graph: GraphProto): Map<string, number> {
  const counts = new Map<string, number>();
  for (const n of graph.nodes) {
    const key = opKey(n);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

describe('forward graph structure', () => {
  it('uses the fused rotary op exactly when the rotary width is a multiple of 16', () => {
    expect(config7b.rotaryDim).toBe(32);
    expect(chooseRotary(config7b)).toBe('fused');
    expect(chooseRotary(parseModelConfig({ hidden_size: 256, num_attention_heads: 2 }))).toBe('fused');
    expect(configTiny.rotaryDim).toBe(4);
    expect(chooseRotary(configTiny)).toBe('standard');
    expect(chooseRotary(configTiny, 'fused')).toBe('fused');
    expect(chooseRotary(config7b, 'standard')).toBe('standard');
  });

  const PATHS: {
    dtype: 'float32' | 'float16';
    rotary: DecoderOptions['rotary'];
    attention: DecoderOptions['attention'];
  }[] = [
    { dtype: 'float16', rotary: 'auto', attention: 'fused' },
    { dtype: 'float32', rotary: 'auto', attention: 'fused' },
    { dtype: 'float32', rotary: 'standard', attention: 'standard' },
  ];

  it.each(PATHS)(
    '7B, $dtype, rotary $rotary, attention $attention: only CUDA-kernel ops',
    ({ dtype, rotary, attention }) => {
      const model = buildForwardModel(config7b, fakeWeights(config7b, dtype), { dtype, rotary, attention });
      const ops = opTypes(model.graph);
      for (const op of ops.keys()) expect(CUDA_KERNEL_OPS, `op ${op}`).toContain(op);
      const L = config7b.numLayers;
      expect(ops.get('Gemm')).toBe(4 * L + 1); // qkv, dense, mlp in, mlp out per layer + LM head
      expect(ops.get('com.microsoft:SkipLayerNormalization')).toBe(L);
      expect(ops.get('LayerNormalization')).toBe(1);
      if (rotary === 'auto') {
        expect(ops.get('com.microsoft:RotaryEmbedding')).toBe(2 * L);
        expect(ops.get('com.microsoft:MultiHeadAttention')).toBe(L);
        expect(ops.has('Softmax')).toBe(false);
      } else {
        expect(ops.has('com.microsoft:RotaryEmbedding')).toBe(false);
        expect(ops.has('com.microsoft:MultiHeadAttention')).toBe(false);
        expect(ops.get('Softmax')).toBe(L);
      }
      // The same dtype throughout: no weight casts when weights are stored in the compute type.
      expect(ops.get('Cast') ?? 0).toBe(dtype === 'float16' ? 1 : 0); // fp16: only the logits go back to float32
      const external = model.graph.initializers.filter((t) => t.external);
      expect(external.map((t) => t.name).sort()).toEqual([...expectedTensors(config7b).keys()].sort());
      expect(model.graph.inputs.map((v) => v.name).slice(0, 4)).toEqual([
        'input_ids',
        'position_ids',
        'past_key_values.0.key',
        'past_key_values.0.value',
      ]);
      expect(model.graph.outputs.map((v) => v.name).slice(0, 3)).toEqual([
        'logits',
        'present.0.key',
        'present.0.value',
      ]);
      // Weights stay outside: the 7B graph file is small (the XPos tables dominate).
      expect(encodeModel(model).byteLength).toBeLessThan(2 * 1024 * 1024);
    },
  );

  it('casts weights stored in another type once, in the main graph', () => {
    const model = buildForwardModel(configTiny, fakeWeights(configTiny, 'bfloat16'), { dtype: 'float32' });
    const casts = model.graph.nodes.filter((n) => n.opType === 'Cast');
    // Every weight except embed_in (cast after the gather) plus the gathered rows.
    expect(casts.length).toBe(expectedTensors(configTiny).size);
  });

  it('refuses a weight map with a missing tensor or a wrong byte length, naming the tensor', () => {
    const missing = fakeWeights(configTiny, 'float32');
    missing.delete('transformer.layers.1.mlp.out_proj.weight');
    expect(() => buildForwardModel(configTiny, missing)).toThrow(
      /transformer\.layers\.1\.mlp\.out_proj\.weight/,
    );
    const short = fakeWeights(configTiny, 'float32');
    const entry = short.get('embed_out.weight') as WeightLocation;
    short.set('embed_out.weight', { ...entry, length: entry.length - 4 });
    expect(() => buildForwardModel(configTiny, short)).toThrow(/embed_out\.weight/);
  });
});
