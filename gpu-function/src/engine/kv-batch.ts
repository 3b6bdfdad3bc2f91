// The host-side key/value cache of a batch: per layer one key and one value array laid out
// [B, N, S, D]. Rows are right-aligned: row b's `len` real entries are its last `len`
// columns, everything to their left is padding (masked in the graph). Rows join, leave and
// share prefixes only by `gather`, which copies real entries into a new, tighter batch.

import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../model/config.ts';
import { pastKeyName, pastValueName, presentKeyName, presentValueName } from '../model/generation-io.ts';

export type KvDtype = 'float32' | 'float16';
type KvArray = Float32Array | Uint16Array;

/** One row of a new batch: row `row` of `source`, whose last `len` columns are real. */
export interface RowSource {
  source: KvBatch;
  row: number;
  len: number;
}

export class KvBatch {
  readonly rows: number;
  readonly columns: number;
  private readonly heads: number;
  private readonly headSize: number;
  private readonly dtype: KvDtype;
  /** Per layer [key, value]. */
  private readonly layers: [KvArray, KvArray][];

  private constructor(
    config: ModelConfig,
    dtype: KvDtype,
    rows: number,
    columns: number,
    layers: [KvArray, KvArray][],
  ) {
    this.rows = rows;
    this.columns = columns;
    this.heads = config.numHeads;
    this.headSize = config.headSize;
    this.dtype = dtype;
    this.layers = layers;
  }

  static empty(config: ModelConfig, dtype: KvDtype, rows: number): KvBatch {
    const make = () => (dtype === 'float32' ? new Float32Array(0) : new Uint16Array(0));
    const layers = Array.from({ length: config.numLayers }, (): [KvArray, KvArray] => [make(), make()]);
    return new KvBatch(config, dtype, rows, 0, layers);
  }

  /** The grown cache a run returned (present.* outputs). */
  static fromOutputs(
    config: ModelConfig,
    dtype: KvDtype,
    out: Record<string, ort.Tensor | undefined>,
  ): KvBatch {
    const layers: [KvArray, KvArray][] = [];
    let dims: readonly number[] = [];
    for (let l = 0; l < config.numLayers; l++) {
      const key = out[presentKeyName(l)];
      const value = out[presentValueName(l)];
      if (!key || !value) throw new Error(`the run returned no cache for layer ${l}`);
      dims = key.dims;
      layers.push([key.data as KvArray, value.data as KvArray]);
    }
    return new KvBatch(config, dtype, Number(dims[0]), Number(dims[2]), layers);
  }

  /**
   * A new batch made of the given rows, right-aligned in `columns` columns (at least the
   * longest row). Padding is zero-filled.
   */
  static gather(
    config: ModelConfig,
    dtype: KvDtype,
    sources: readonly RowSource[],
    columns: number,
  ): KvBatch {
    const N = config.numHeads;
    const D = config.headSize;
    const B = sources.length;
    const size = B * N * columns * D;
    const layers: [KvArray, KvArray][] = [];
    for (let l = 0; l < config.numLayers; l++) {
      const pair: KvArray[] = [];
      for (let kv = 0; kv < 2; kv++) {
        const dst = dtype === 'float32' ? new Float32Array(size) : new Uint16Array(size);
        sources.forEach((s, b) => {
          if (s.len > columns || s.len > s.source.columns) {
            throw new RangeError(`row of ${s.len} entries does not fit ${columns} columns`);
          }
          if (s.len === 0) return;
          const src = (s.source.layers[l] as [KvArray, KvArray])[kv] as KvArray;
          const S = s.source.columns;
          for (let n = 0; n < N; n++) {
            const from = ((s.row * N + n) * S + (S - s.len)) * D;
            const to = ((b * N + n) * columns + (columns - s.len)) * D;
            dst.set(src.subarray(from, from + s.len * D), to);
          }
        });
        pair.push(dst);
      }
      layers.push(pair as [KvArray, KvArray]);
    }
    return new KvBatch(config, dtype, B, columns, layers);
  }

  /** Bytes held (keys and values of every layer). */
  get bytes(): number {
    return this.layers.reduce((n, [k, v]) => n + k.byteLength + v.byteLength, 0);
  }

  /** The past_key_values.* feeds of a run. */
  feeds(): Record<string, ort.Tensor> {
    const dims = [this.rows, this.heads, this.columns, this.headSize];
    const feeds: Record<string, ort.Tensor> = {};
    this.layers.forEach(([key, value], l) => {
      feeds[pastKeyName(l)] = new ort.Tensor(this.dtype, key, dims);
      feeds[pastValueName(l)] = new ort.Tensor(this.dtype, value, dims);
    });
    return feeds;
  }
}
