// The full-logits forward graph (forward.onnx): one decoder step in the main graph.
//   inputs:  input_ids [batch, seq] int64, position_ids [batch, seq] int64,
//            past_key_values.{l}.key / .value [batch, N, past, D]
//            (+ attention_mask [batch, past + seq] int64 when asked for: 0 marks padding)
//   outputs: logits [batch, seq, V] float32, present.{l}.key / .value [batch, N, total, D]
//            (+ final_hidden [batch, seq, H] when asked for, to test the trunk alone)

import type { ModelConfig } from './config.ts';
import { type DecoderOptions, type KeyValue, prepareDecoder, type WeightMap } from './decoder.ts';
import { GraphBuilder, type ModelProto } from './onnx/index.ts';

export interface ForwardModelOptions extends DecoderOptions {
  /** Also output the final layer norm's output as `final_hidden`. */
  finalHidden?: boolean;
  /** Take an `attention_mask` input, so rows of different lengths can share a batch. */
  attentionMask?: boolean;
}

export const pastKeyName = (layer: number) => `past_key_values.${layer}.key`;
export const pastValueName = (layer: number) => `past_key_values.${layer}.value`;
export const presentKeyName = (layer: number) => `present.${layer}.key`;
export const presentValueName = (layer: number) => `present.${layer}.value`;

export function buildForwardModel(
  config: ModelConfig,
  weights: WeightMap,
  options: ForwardModelOptions = {},
): ModelProto {
  const g = new GraphBuilder('forward');
  const decoder = prepareDecoder(g, config, weights, options);
  const { dtype } = decoder;
  const { numHeads: N, headSize: D } = config;

  const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
  const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);
  const past: KeyValue[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    past.push({
      key: g.input(pastKeyName(l), dtype, ['batch', N, 'past', D]),
      value: g.input(pastValueName(l), dtype, ['batch', N, 'past', D]),
    });
  }

  const attentionMask = options.attentionMask
    ? g.input('attention_mask', 'int64', ['batch', 'total'])
    : undefined;
  const { hidden, present } = decoder.step(g, {
    inputIds,
    positionIds,
    past,
    ...(attentionMask ? { attentionMask } : {}),
  });
  g.output('logits', decoder.logits(g, hidden), 'float32', ['batch', 'seq', config.vocabSize]);
  present.forEach((kv, l) => {
    g.output(presentKeyName(l), kv.key, dtype, ['batch', N, 'total', D]);
    g.output(presentValueName(l), kv.value, dtype, ['batch', N, 'total', D]);
  });
  if (options.finalHidden) g.output('final_hidden', hidden, dtype, ['batch', 'seq', config.hiddenSize]);

  return g.model({
    metadata: {
      compute_dtype: dtype,
      rotary: decoder.rotary,
      attention: decoder.attention,
    },
  });
}
