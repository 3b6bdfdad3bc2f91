// The ONNX graphs a converted folder holds. Each reads its weights from the folder's weight
// files through external data, so a graph file itself is small.

import type { ModelConfig } from '../model/config.ts';
import type { ComputeDtype } from '../model/decoder.ts';
import { buildForwardModel } from '../model/forward-model.ts';
import { buildGenerationModel } from '../model/generation-graph.ts';
import { encodeModel } from '../model/onnx/index.ts';
import type { WeightLocation } from './manifest.ts';

export interface GraphTarget {
  kind: 'forward' | 'generate';
  file: string;
  build(config: ModelConfig, weights: Record<string, WeightLocation>, dtype: ComputeDtype): Uint8Array;
}

export const GRAPH_TARGETS: readonly GraphTarget[] = [
  {
    kind: 'forward',
    file: 'forward.onnx',
    build: (config, weights, dtype) => encodeModel(buildForwardModel(config, weights, { dtype })),
  },
  {
    kind: 'generate',
    file: 'model.onnx',
    build: (config, weights, dtype) => encodeModel(buildGenerationModel(config, weights, { dtype })),
  },
];
