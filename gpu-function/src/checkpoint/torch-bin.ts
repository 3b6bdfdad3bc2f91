// PyTorch checkpoints as torch.save writes them (since torch 1.6): a zip archive holding
// `<archive>/data.pkl`, a pickle of the state dict in which every tensor refers to a storage
// by key, and `<archive>/data/<key>`, each storage's raw little-endian bytes, stored
// uncompressed. A TensorRef can therefore point straight into the zip file.

import { open } from 'node:fs/promises';
import { crc32, inflateRawSync } from 'node:zlib';
import { CheckpointError } from './errors.ts';
import { PickleError, PyTuple, unpickle } from './pickle.ts';
import {
  DTYPE_BYTES,
  elementCount,
  type ReadOptions,
  type TensorDtype,
  type TensorRef,
} from './tensor-ref.ts';
import { readZipEntries, ZIP_DEFLATED, ZIP_STORED, type ZipEntry } from './zip.ts';

/** Storage classes torch.save names, with the element type (undefined: not a type this model uses). */
const STORAGE_DTYPES: Record<string, TensorDtype | undefined> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: undefined,
  LongStorage: undefined,
  IntStorage: undefined,
  ShortStorage: undefined,
  CharStorage: undefined,
  ByteStorage: undefined,
  BoolStorage: undefined,
  ComplexFloatStorage: undefined,
  ComplexDoubleStorage: undefined,
};

class StorageType {
  readonly torchName: string;
  readonly dtype: TensorDtype | undefined;
  constructor(torchName: string) {
    this.torchName = torchName;
    this.dtype = STORAGE_DTYPES[torchName];
  }
}

interface Storage {
  type: StorageType;
  key: string;
  numel: number;
}

class TorchTensor {
  readonly storage: Storage;
  readonly storageOffset: number;
  readonly shape: number[];
  readonly stride: number[];
  constructor(storage: Storage, storageOffset: number, shape: number[], stride: number[]) {
    this.storage = storage;
    this.storageOffset = storageOffset;
    this.shape = shape;
    this.stride = stride;
  }
}

const ORDERED_DICT = Symbol('collections.OrderedDict');
const REBUILD_TENSOR = Symbol('torch._utils._rebuild_tensor_v2');
const REBUILD_PARAMETER = Symbol('torch._utils._rebuild_parameter');

function nonNegativeInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new PickleError(`${what} is not a non-negative integer (${String(v)})`);
  }
  return v;
}

function intTuple(v: unknown, what: string): number[] {
  if (!(v instanceof PyTuple)) throw new PickleError(`${what} is not a tuple`);
  return v.items.map((x, i) => nonNegativeInt(x, `${what}[${i}]`));
}

const hooks = {
  findClass(module: string, name: string): unknown {
    if (module === 'collections' && name === 'OrderedDict') return ORDERED_DICT;
    if (module === 'torch._utils' && name === '_rebuild_tensor_v2') return REBUILD_TENSOR;
    if (module === 'torch._utils' && name === '_rebuild_parameter') return REBUILD_PARAMETER;
    if (module === 'torch' && Object.hasOwn(STORAGE_DTYPES, name)) return new StorageType(name);
    throw new PickleError(`unsupported object ${module}.${name} (only state dicts of tensors are read)`);
  },
  call(callable: unknown, args: readonly unknown[]): unknown {
    if (callable === ORDERED_DICT) {
      const d = new Map<unknown, unknown>();
      // OrderedDict() or OrderedDict([(key, value), ...])
      for (const pair of (args[0] as unknown[] | undefined) ?? []) {
        if (pair instanceof PyTuple && pair.items.length === 2) d.set(pair.items[0], pair.items[1]);
      }
      return d;
    }
    if (callable === REBUILD_TENSOR) {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      const [storage, offset, size, stride] = args;
      if (!storage || typeof storage !== 'object' || !('key' in storage)) {
        throw new PickleError('_rebuild_tensor_v2 without a storage');
      }
      return new TorchTensor(
        storage as Storage,
        nonNegativeInt(offset, 'storage offset'),
        intTuple(size, 'size'),
        intTuple(stride, 'stride'),
      );
    }
    if (callable === REBUILD_PARAMETER) {
      // (data, requires_grad, backward_hooks): a Parameter is its tensor here.
      return args[0];
    }
    throw new PickleError('call of an unsupported object');
  },
  persistentLoad(pid: unknown): unknown {
    // ('storage', storage_type, key, location, numel)
    if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage' || pid.items.length < 5) {
      throw new PickleError('unsupported persistent id (expected a storage)');
    }
    const [, type, key, , numel] = pid.items;
    if (!(type instanceof StorageType)) throw new PickleError('storage without a storage type');
    if (typeof key !== 'string' || !/^[\w.-]+$/.test(key)) throw new PickleError('bad storage key');
    return { type, key, numel: nonNegativeInt(numel, 'storage size') } satisfies Storage;
  },
  build(target: unknown): void {
    // OrderedDict state (the state dict's _metadata) is not needed.
    if (!(target instanceof Map)) throw new PickleError('BUILD on an unsupported object');
  },
};

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  if (shape.length !== stride.length) return false;
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}

/** data.pkl and byteorder are read into memory; a state dict's pickle is a few hundred kilobytes. */
export const MAX_IN_MEMORY_ENTRY_BYTES = 64 * 1024 * 1024;

async function readEntry(fh: import('node:fs/promises').FileHandle, file: string, entry: ZipEntry) {
  if (entry.size > MAX_IN_MEMORY_ENTRY_BYTES || entry.compressedSize > MAX_IN_MEMORY_ENTRY_BYTES) {
    throw new CheckpointError(
      `${file}: zip entry '${entry.name}' is ${Math.max(entry.size, entry.compressedSize)} bytes; at most ${MAX_IN_MEMORY_ENTRY_BYTES} are expected`,
    );
  }
  const raw = Buffer.alloc(entry.compressedSize);
  await fh.read(raw, 0, raw.length, entry.dataOffset);
  let bytes: Buffer;
  if (entry.method === ZIP_STORED) bytes = raw;
  else if (entry.method === ZIP_DEFLATED) {
    try {
      // Never more than the declared size: a zip bomb stops at its first excess byte.
      bytes = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
    } catch (err) {
      const tooLarge = (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
      throw new CheckpointError(
        `${file}: corrupt zip entry '${entry.name}' (${tooLarge ? `inflates past its declared ${entry.size} bytes` : 'cannot inflate'})`,
      );
    }
  } else {
    throw new CheckpointError(
      `${file}: zip entry '${entry.name}' uses unsupported compression ${entry.method}`,
    );
  }
  if (bytes.length !== entry.size || crc32(bytes) !== entry.crc32) {
    throw new CheckpointError(`${file}: corrupt zip entry '${entry.name}' (size or CRC-32 mismatch)`);
  }
  return bytes;
}

/** Lists the tensors of a torch.save zip checkpoint; every tensor must be contiguous. */
export async function readTorchCheckpoint(file: string, options: ReadOptions = {}): Promise<TensorRef[]> {
  const fh = await open(file, 'r');
  try {
    const magic = Buffer.alloc(4);
    await fh.read(magic, 0, 4, 0);
    if (magic.readUInt32LE(0) !== 0x04034b50) {
      throw new CheckpointError(
        magic[0] === 0x80
          ? `${file}: legacy (pre-1.6) torch.save format is not supported; re-save it with a newer torch`
          : `${file}: not a PyTorch checkpoint (not a zip archive)`,
      );
    }
    const entries = await readZipEntries(fh, file);
    const pickles = [...entries.keys()].filter((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
    if (pickles.length !== 1) {
      throw new CheckpointError(`${file}: expected one data.pkl in the archive, found ${pickles.length}`);
    }
    const prefix = pickles[0]!.slice(0, -'data.pkl'.length);
    const byteorder = entries.get(`${prefix}byteorder`);
    if (byteorder) {
      const order = (await readEntry(fh, file, byteorder)).toString('latin1');
      if (order !== 'little') throw new CheckpointError(`${file}: ${order}-endian tensors are not supported`);
    }

    let state: unknown;
    try {
      state = unpickle(await readEntry(fh, file, entries.get(pickles[0]!)!), hooks);
    } catch (err) {
      if (err instanceof PickleError) throw new CheckpointError(`${file}: corrupt data.pkl: ${err.message}`);
      throw err;
    }
    if (!(state instanceof Map)) throw new CheckpointError(`${file}: data.pkl does not hold a state dict`);

    const refs: TensorRef[] = [];
    for (const [name, value] of state) {
      if (typeof name !== 'string')
        throw new CheckpointError(`${file}: state dict key ${String(name)} is not a string`);
      if (options.skip?.(name)) continue;
      if (!(value instanceof TorchTensor)) {
        throw new CheckpointError(`${file}: state dict entry '${name}' is not a tensor`);
      }
      const { storage, shape, stride, storageOffset } = value;
      const dtype = storage.type.dtype;
      if (!dtype) {
        throw new CheckpointError(
          `${file}: tensor '${name}' has unsupported dtype torch.${storage.type.torchName} (expected F32, F16 or BF16)`,
        );
      }
      if (!isContiguous(shape, stride)) {
        throw new CheckpointError(
          `${file}: tensor '${name}' is not contiguous (shape [${shape}], stride [${stride}]); save it with .contiguous()`,
        );
      }
      const count = elementCount(shape);
      if (storageOffset + count > storage.numel) {
        throw new CheckpointError(`${file}: tensor '${name}' lies outside its storage '${storage.key}'`);
      }
      const entry = entries.get(`${prefix}data/${storage.key}`);
      if (!entry)
        throw new CheckpointError(`${file}: storage '${storage.key}' of tensor '${name}' is missing`);
      if (entry.method !== ZIP_STORED) {
        throw new CheckpointError(
          `${file}: storage of tensor '${name}' is compressed in the zip; only uncompressed (stored) entries are supported`,
        );
      }
      const elementBytes = DTYPE_BYTES[dtype];
      if (entry.size < storage.numel * elementBytes) {
        throw new CheckpointError(
          `${file}: storage '${storage.key}' of tensor '${name}' is ${entry.size} bytes, expected ${storage.numel * elementBytes}`,
        );
      }
      refs.push({
        name,
        dtype,
        shape,
        file,
        offset: entry.dataOffset + storageOffset * elementBytes,
        byteLength: count * elementBytes,
      });
    }
    return refs;
  } finally {
    await fh.close();
  }
}
