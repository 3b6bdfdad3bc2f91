// The ONNX graphs are built from a model folder when it is opened, not shipped in it: a
// converted folder holds config, weights and manifest only, so a change to the decoder or the
// sampler never needs a re-conversion or a re-upload. A graph file is small (weights stay in
// the folder's own files as external data), and onnxruntime resolves external data relative
// to the graph file, so the graph is written inside the folder under a name the manifest does
// not list. Older folders (which still carry model.onnx / forward.onnx) work the same way.

import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ComputeDtype, DecoderOptions } from '../model/decoder.ts';
import { buildForwardModel } from '../model/forward-model.ts';
import { buildGenerationModel } from '../model/generation-graph.ts';
import { encodeModel } from '../model/onnx/index.ts';
import { readManifest } from './manifest.ts';

export type GraphKind = 'generate' | 'forward';

export interface GraphOptions extends Omit<DecoderOptions, 'dtype'> {
  /** Compute type; default the manifest's computeDtype. */
  dtype?: ComputeDtype;
  /** forward only: take an attention_mask input. */
  attentionMask?: boolean;
}

export const GRAPH_FILE: Record<GraphKind, string> = {
  generate: 'graph.generate.onnx',
  forward: 'graph.forward.onnx',
};

/** Builds a graph for the folder's weights and writes it into the folder; returns its path. */
export async function writeGraph(dir: string, kind: GraphKind, options: GraphOptions = {}): Promise<string> {
  const manifest = await readManifest(dir);
  const dtype = options.dtype ?? manifest.computeDtype;
  const { attentionMask, ...decoder } = options;
  const model =
    kind === 'generate'
      ? buildGenerationModel(manifest.config, manifest.tensors, { ...decoder, dtype })
      : buildForwardModel(manifest.config, manifest.tensors, {
          ...decoder,
          dtype,
          ...(attentionMask ? { attentionMask } : {}),
        });
  const file = path.join(dir, GRAPH_FILE[kind]);
  const partial = `${file}.${process.pid}.partial`;
  try {
    await writeFile(partial, encodeModel(model));
    await rename(partial, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new Error(
      `cannot write the ${kind} graph into ${dir} (${code}): the model folder must be writable`,
    );
  }
  return file;
}
