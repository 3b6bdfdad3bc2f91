// Runs the forward graph (see forward-model.ts) of a converted model folder: token ids and
// positions in, float32 logits and the KV cache out. Used by the `logits` command and tests.
// A converted folder gets its graph built on open; a folder without a manifest (tests) is
// opened with the forward.onnx it holds.

import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { writeGraph } from '../model-folder/graphs.ts';
import { MANIFEST_FILE } from '../model-folder/manifest.ts';
import { type ModelConfig, parseModelConfig } from './config.ts';
import type { ComputeDtype } from './decoder.ts';
import { pastKeyName, pastValueName, presentKeyName, presentValueName } from './forward-model.ts';

export const FORWARD_GRAPH_FILE = 'forward.onnx';

export class ForwardInputError extends Error {
  override name = 'ForwardInputError';
}

/** Per layer [B, N, S, D] key and value tensors in the compute dtype. */
export type KvCache = { key: ort.Tensor; value: ort.Tensor }[];

export interface ForwardRequest {
  /** One row per batch entry, all rows the same length T >= 1. */
  inputIds: number[][];
  /** Same shape as inputIds; default past length + 0..T-1. */
  positionIds?: number[][];
  /** Cache from an earlier call on the same rows; empty when omitted. */
  past?: KvCache;
  /** [B, past + T], 0 marks padding; only for graphs built with an attention_mask input. */
  attentionMask?: number[][];
}

export interface ForwardResult {
  /** [B, T, V] row-major. */
  logits: Float32Array;
  present: KvCache;
  /** Only when the graph was built with finalHidden. */
  finalHidden?: ort.Tensor;
}

export interface ForwardSession {
  config: ModelConfig;
  dtype: ComputeDtype;
  run(request: ForwardRequest): Promise<ForwardResult>;
  release(): Promise<void>;
}

/** Options that suit a small CPU: few threads, weights left memory-mapped (no prepacking copy). */
export function cpuSessionOptions(threads = 1): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { disable_prepacking: '1' } },
  };
}

function emptyCache(config: ModelConfig, dtype: ComputeDtype, batch: number): KvCache {
  const dims = [batch, config.numHeads, 0, config.headSize];
  const make = () =>
    new ort.Tensor(dtype, dtype === 'float32' ? new Float32Array(0) : new Uint16Array(0), dims);
  return Array.from({ length: config.numLayers }, () => ({ key: make(), value: make() }));
}

/** Checks a request against the model's limits; throws ForwardInputError with a clear message. */
export function validateForwardRequest(config: ModelConfig, request: ForwardRequest): void {
  const rows = request.inputIds;
  if (rows.length === 0) throw new ForwardInputError('no input rows');
  const T = rows[0]?.length ?? 0;
  if (T === 0) throw new ForwardInputError('no token ids');
  const pastLength = Number(request.past?.[0]?.key.dims[2] ?? 0);
  if (request.past && request.past.length !== config.numLayers) {
    throw new ForwardInputError(`past has ${request.past.length} layers; the model has ${config.numLayers}`);
  }
  rows.forEach((row, b) => {
    if (row.length !== T) throw new ForwardInputError(`row ${b} has ${row.length} ids; row 0 has ${T}`);
    for (const id of row) {
      if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
        throw new ForwardInputError(`token id ${id} is outside the vocabulary [0, ${config.vocabSize})`);
      }
    }
  });
  if (request.positionIds) {
    if (request.positionIds.length !== rows.length) {
      throw new ForwardInputError(`${request.positionIds.length} position rows for ${rows.length} id rows`);
    }
    request.positionIds.forEach((row, b) => {
      if (row.length !== T)
        throw new ForwardInputError(`position row ${b} has ${row.length} entries; ids have ${T}`);
      for (const p of row) {
        if (!Number.isInteger(p) || p < 0 || p >= config.maxPositions) {
          throw new ForwardInputError(`position ${p} is outside [0, ${config.maxPositions})`);
        }
      }
    });
  } else if (pastLength + T > config.maxPositions) {
    throw new ForwardInputError(`${pastLength + T} positions exceed the model's ${config.maxPositions}`);
  }
}

function int64Tensor(rows: number[][]): ort.Tensor {
  const data = BigInt64Array.from(rows.flat(), (v) => BigInt(v));
  return new ort.Tensor('int64', data, [rows.length, rows[0]?.length ?? 0]);
}

export async function openForwardSession(
  modelDir: string,
  options: ort.InferenceSession.SessionOptions = cpuSessionOptions(),
): Promise<ForwardSession> {
  const configText = await readFile(path.join(modelDir, 'config.json'), 'utf8').catch(() => {
    throw new ForwardInputError(`${modelDir}: no config.json (is it a converted model folder?)`);
  });
  const config = parseModelConfig(JSON.parse(configText));
  const converted = await access(path.join(modelDir, MANIFEST_FILE)).then(
    () => true,
    () => false,
  );
  const graphPath = converted
    ? await writeGraph(modelDir, 'forward')
    : path.join(modelDir, FORWARD_GRAPH_FILE);
  const session = await ort.InferenceSession.create(graphPath, options).catch((err: unknown) => {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ForwardInputError(`${graphPath}: cannot load the forward graph: ${reason}`);
  });
  const pastMeta = session.inputMetadata.find((m) => m.name === pastKeyName(0));
  const dtype: ComputeDtype = pastMeta?.isTensor && pastMeta.type === 'float16' ? 'float16' : 'float32';
  const wantsHidden = session.outputNames.includes('final_hidden');
  const wantsMask = session.inputNames.includes('attention_mask');

  async function run(request: ForwardRequest): Promise<ForwardResult> {
    validateForwardRequest(config, request);
    const batch = request.inputIds.length;
    const T = request.inputIds[0]?.length ?? 0;
    const past = request.past ?? emptyCache(config, dtype, batch);
    const pastLength = Number(past[0]?.key.dims[2] ?? 0);
    const positions =
      request.positionIds ?? request.inputIds.map(() => Array.from({ length: T }, (_, i) => pastLength + i));
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64Tensor(request.inputIds),
      position_ids: int64Tensor(positions),
    };
    if (wantsMask) {
      feeds.attention_mask = int64Tensor(
        request.attentionMask ?? request.inputIds.map(() => new Array<number>(pastLength + T).fill(1)),
      );
    } else if (request.attentionMask) {
      throw new ForwardInputError('this forward graph takes no attention_mask');
    }
    past.forEach((kv, l) => {
      feeds[pastKeyName(l)] = kv.key;
      feeds[pastValueName(l)] = kv.value;
    });
    const out = await session.run(feeds);
    const present: KvCache = past.map((_, l) => ({
      key: out[presentKeyName(l)] as ort.Tensor,
      value: out[presentValueName(l)] as ort.Tensor,
    }));
    return {
      logits: (out.logits as ort.Tensor).data as Float32Array,
      present,
      ...(wantsHidden ? { finalHidden: out.final_hidden as ort.Tensor } : {}),
    };
  }

  return { config, dtype, run, release: () => session.release() };
}
