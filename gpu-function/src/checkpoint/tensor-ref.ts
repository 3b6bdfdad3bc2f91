/** Element types found in published checkpoints. */
export type TensorDtype = 'F32' | 'F16' | 'BF16';

export const DTYPE_BYTES: Record<TensorDtype, number> = { F32: 4, F16: 2, BF16: 2 };

export function isTensorDtype(value: unknown): value is TensorDtype {
  return typeof value === 'string' && Object.hasOwn(DTYPE_BYTES, value);
}

/** Where one tensor's raw little-endian bytes sit on disk (no data is read). */
export interface TensorRef {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  /** Absolute path of the file holding the bytes. */
  file: string;
  /** Byte offset of the first element within `file`. */
  offset: number;
  byteLength: number;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Options every checkpoint file reader takes. */
export interface ReadOptions {
  /** Tensors to leave out without validating them (derived buffers the model ignores). */
  skip?: (name: string) => boolean;
}
