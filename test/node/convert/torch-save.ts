// Writes PyTorch checkpoints byte for byte as torch.save does (zip + protocol-2 pickle), so
// the .bin reader can be tested without Python or torch. Layout of one file:
//   archive/data.pkl        the state dict, pickled with Python's protocol-2 opcodes and memo
//   archive/byteorder       "little"
//   archive/data/<key>      each storage's raw bytes, 64-byte aligned through a padding extra field
//   archive/version         "3\n"
//   archive/.data/serialization_id
// Every entry is stored uncompressed; with `zip64` the ZIP64 records are written even for a
// small file (torch writes them once the archive passes 4 GiB).

import { open } from 'node:fs/promises';
import { crc32, deflateRawSync } from 'node:zlib';
import {
  DTYPE_BYTES,
  elementCount,
  type TensorDtype,
} from '../../../gpu-function/src/checkpoint/tensor-ref.ts';

export interface TorchStorage {
  key: string;
  dtype: TensorDtype;
  data: Uint8Array;
  /** Storage class to name instead of the dtype's (e.g. DoubleStorage, to test rejection). */
  storageClass?: string;
}

export interface TorchTensorView {
  name: string;
  storage: string;
  storageOffset: number;
  shape: number[];
  stride: number[];
}

export interface TorchSaveOptions {
  /** state_dict() gives an OrderedDict with _metadata; transformers' shards are plain dicts. */
  container?: 'OrderedDict' | 'dict';
  zip64?: boolean;
  archiveName?: string;
  /** Deflate the storages (torch never does; readers must reject it). */
  deflateStorages?: boolean;
}

const STORAGE_CLASS: Record<TensorDtype, string> = {
  F32: 'FloatStorage',
  F16: 'HalfStorage',
  BF16: 'BFloat16Storage',
};

/** Protocol-2 opcodes, named as in Python's pickle module. */
const OP = {
  PROTO: 0x80,
  STOP: 0x2e,
  MARK: 0x28,
  GLOBAL: 0x63,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  EMPTY_TUPLE: 0x29,
  TUPLE: 0x74,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  EMPTY_DICT: 0x7d,
  SETITEM: 0x73,
  SETITEMS: 0x75,
  BINUNICODE: 0x58,
  BININT: 0x4a,
  BININT1: 0x4b,
  BININT2: 0x4d,
  LONG1: 0x8a,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  REDUCE: 0x52,
  BUILD: 0x62,
  BINPERSID: 0x51,
} as const;

/** Emits opcodes the way CPython's Pickler does for these objects, memo included. */
class Pickler {
  private out: number[] = [];
  private memoCount = 0;
  /** Objects Python would find in its memo (same identity): globals and reused strings. */
  private memo = new Map<string, number>();

  private byte(...b: number[]): void {
    this.out.push(...b);
  }
  private u32(v: number): void {
    this.byte(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  }
  private put(): void {
    const i = this.memoCount++;
    if (i < 256) this.byte(OP.BINPUT, i);
    else {
      this.byte(OP.LONG_BINPUT);
      this.u32(i);
    }
  }
  private get(i: number): void {
    if (i < 256) this.byte(OP.BINGET, i);
    else {
      this.byte(OP.LONG_BINGET);
      this.u32(i);
    }
  }
  /** An object saved once and fetched from the memo afterwards (identity `id`). */
  private memoized(id: string, write: () => void): void {
    const hit = this.memo.get(id);
    if (hit !== undefined) {
      this.get(hit);
      return;
    }
    write();
    this.memo.set(id, this.memoCount);
    this.put();
  }

  proto(): void {
    this.byte(OP.PROTO, 2);
  }
  stop(): Uint8Array {
    this.byte(OP.STOP);
    return Uint8Array.from(this.out);
  }
  mark(): void {
    this.byte(OP.MARK);
  }
  op(code: number): void {
    this.byte(code);
  }

  global(module: string, name: string): void {
    this.memoized(`global:${module}.${name}`, () => {
      this.byte(OP.GLOBAL, ...Buffer.from(`${module}\n${name}\n`, 'latin1'));
    });
  }
  /** A str; `shared` marks one object Python reuses (a literal), fetched from the memo after the first time. */
  str(s: string, shared = false): void {
    const write = () => {
      const b = Buffer.from(s, 'utf8');
      this.byte(OP.BINUNICODE);
      this.u32(b.length);
      this.byte(...b);
    };
    if (shared) this.memoized(`str:${s}`, write);
    else {
      write();
      this.put();
    }
  }
  int(v: number): void {
    if (v >= 0 && v <= 0xff) this.byte(OP.BININT1, v);
    else if (v >= 0 && v <= 0xffff) this.byte(OP.BININT2, v & 0xff, v >>> 8);
    else if (v >= -0x80000000 && v <= 0x7fffffff) {
      this.byte(OP.BININT);
      this.u32(v >>> 0);
    } else {
      // LONG1: minimal little-endian two's complement (positive values only here).
      let x = BigInt(v);
      const bytes: number[] = [];
      const n = (x.toString(2).length >> 3) + 1;
      for (let i = 0; i < n; i++) {
        bytes.push(Number(x & 0xffn));
        x >>= 8n;
      }
      this.byte(OP.LONG1, n, ...bytes);
    }
  }
  bool(v: boolean): void {
    this.byte(v ? OP.NEWTRUE : OP.NEWFALSE);
  }
  /** A tuple of already-written items: TUPLE1..3 for short ones, MARK..TUPLE otherwise (caller wrote MARK). */
  tupleEnd(length: number): void {
    if (length === 0) this.byte(OP.EMPTY_TUPLE);
    else {
      this.byte(length <= 3 ? [OP.TUPLE1, OP.TUPLE2, OP.TUPLE3][length - 1]! : OP.TUPLE);
      this.put();
    }
  }
  intTuple(values: number[]): void {
    if (values.length > 3) this.mark();
    for (const v of values) this.int(v);
    this.tupleEnd(values.length);
  }
  /** REDUCE of the callable and argument tuple on the stack; the result goes into the memo. */
  reduce(): void {
    this.byte(OP.REDUCE);
    this.put();
  }
  /** OrderedDict(): GLOBAL, (), REDUCE, memo. */
  emptyOrderedDict(): void {
    this.global('collections', 'OrderedDict');
    this.byte(OP.EMPTY_TUPLE);
    this.reduce();
  }
  emptyDict(): void {
    this.byte(OP.EMPTY_DICT);
    this.put();
  }
  /** Python's _batch_setitems: batches of 1000, one pair written with SETITEM. */
  setItems(items: readonly (() => void)[]): void {
    for (let i = 0; i < items.length; i += 1000) {
      const batch = items.slice(i, i + 1000);
      if (batch.length > 1) this.mark();
      for (const writePair of batch) writePair();
      this.byte(batch.length > 1 ? OP.SETITEMS : OP.SETITEM);
    }
  }
}

function pickleStateDict(
  storages: ReadonlyMap<string, TorchStorage>,
  tensors: readonly TorchTensorView[],
  container: 'OrderedDict' | 'dict',
): Uint8Array {
  const p = new Pickler();
  p.proto();
  if (container === 'OrderedDict') p.emptyOrderedDict();
  else p.emptyDict();
  p.setItems(
    tensors.map((t) => () => {
      const storage = storages.get(t.storage);
      if (!storage) throw new Error(`no storage '${t.storage}'`);
      p.str(t.name);
      // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)
      p.global('torch._utils', '_rebuild_tensor_v2');
      p.mark();
      // persistent id: ('storage', torch.<X>Storage, key, 'cpu', numel)
      p.mark();
      p.str('storage', true);
      p.global('torch', storage.storageClass ?? STORAGE_CLASS[storage.dtype]);
      p.str(storage.key);
      p.str('cpu', true);
      p.int(storage.data.byteLength / DTYPE_BYTES[storage.dtype]);
      p.tupleEnd(5);
      p.op(OP.BINPERSID);
      p.int(t.storageOffset);
      p.intTuple(t.shape);
      p.intTuple(t.stride);
      p.bool(false);
      p.emptyOrderedDict();
      p.tupleEnd(6);
      p.reduce();
    }),
  );
  if (container === 'OrderedDict') {
    // state_dict()._metadata, restored with BUILD: {'_metadata': OrderedDict([('', {'version': 1})])}
    p.emptyDict();
    p.str('_metadata');
    p.emptyOrderedDict();
    p.str('');
    p.emptyDict();
    p.str('version');
    p.int(1);
    p.op(OP.SETITEM);
    p.op(OP.SETITEM);
    p.op(OP.SETITEM);
    p.op(OP.BUILD);
  }
  return p.stop();
}

const LOCAL_SIG = 0x04034b50;
const CENTRAL_SIG = 0x02014b50;
const EOCD_SIG = 0x06054b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ALIGNMENT = 64;
const PADDING_EXTRA_ID = 0x4246; // "FB", the id torch's writer uses for alignment padding

interface WrittenEntry {
  name: Buffer;
  crc: number;
  method: number;
  size: number;
  compressedSize: number;
  offset: number;
}

function le(bytes: number, value: number | bigint): Buffer {
  const b = Buffer.alloc(bytes);
  if (bytes === 2) b.writeUInt16LE(Number(value));
  else if (bytes === 4) b.writeUInt32LE(Number(value));
  else b.writeBigUInt64LE(BigInt(value));
  return b;
}

/** A stored-entry zip writer: local header (+ZIP64 extra, +padding), data; then directory and end records. */
class ZipWriter {
  private parts: Buffer[] = [];
  private position = 0;
  private entries: WrittenEntry[] = [];
  private readonly zip64: boolean;
  constructor(zip64: boolean) {
    this.zip64 = zip64;
  }

  private push(b: Buffer | Uint8Array): void {
    const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    this.parts.push(buf);
    this.position += buf.length;
  }

  add(name: string, content: Uint8Array, deflate = false): void {
    const nameBytes = Buffer.from(name, 'utf8');
    const crc = crc32(content);
    const data = deflate ? deflateRawSync(content) : content;
    const method = deflate ? 8 : 0;
    const offset = this.position;
    const zip64Extra = this.zip64
      ? Buffer.concat([le(2, 1), le(2, 16), le(8, content.byteLength), le(8, data.byteLength)])
      : Buffer.alloc(0);
    const fixed = 30 + nameBytes.length + zip64Extra.length;
    const pad = (ALIGNMENT - ((offset + fixed + 4) % ALIGNMENT)) % ALIGNMENT;
    const padding = Buffer.concat([le(2, PADDING_EXTRA_ID), le(2, pad), Buffer.alloc(pad)]);
    this.push(
      Buffer.concat([
        le(4, LOCAL_SIG),
        le(2, this.zip64 ? 45 : 20), // version needed
        le(2, 0), // flags
        le(2, method),
        le(2, 0), // time
        le(2, 0x21), // date: 1980-01-01
        le(4, crc),
        le(4, this.zip64 ? 0xffffffff : data.byteLength),
        le(4, this.zip64 ? 0xffffffff : content.byteLength),
        le(2, nameBytes.length),
        le(2, zip64Extra.length + padding.length),
        nameBytes,
        zip64Extra,
        padding,
      ]),
    );
    this.push(data);
    this.entries.push({
      name: nameBytes,
      crc,
      method,
      size: content.byteLength,
      compressedSize: data.byteLength,
      offset,
    });
  }

  finish(): Buffer[] {
    const directoryOffset = this.position;
    for (const e of this.entries) {
      const extra = this.zip64
        ? Buffer.concat([le(2, 1), le(2, 24), le(8, e.size), le(8, e.compressedSize), le(8, e.offset)])
        : Buffer.alloc(0);
      const small = (v: number) => (this.zip64 ? 0xffffffff : v);
      this.push(
        Buffer.concat([
          le(4, CENTRAL_SIG),
          le(2, this.zip64 ? 45 : 20), // version made by
          le(2, this.zip64 ? 45 : 20), // version needed
          le(2, 0), // flags
          le(2, e.method),
          le(2, 0), // time
          le(2, 0x21), // date
          le(4, e.crc),
          le(4, small(e.compressedSize)),
          le(4, small(e.size)),
          le(2, e.name.length),
          le(2, extra.length),
          le(2, 0), // comment
          le(2, 0), // disk
          le(2, 0), // internal attributes
          le(4, 0), // external attributes
          le(4, small(e.offset)),
          e.name,
          extra,
        ]),
      );
    }
    const directorySize = this.position - directoryOffset;
    const count = this.entries.length;
    if (this.zip64) {
      const recordOffset = this.position;
      this.push(
        Buffer.concat([
          le(4, ZIP64_EOCD_SIG),
          le(8, 44),
          le(2, 45),
          le(2, 45),
          le(4, 0),
          le(4, 0),
          le(8, count),
          le(8, count),
          le(8, directorySize),
          le(8, directoryOffset),
        ]),
      );
      this.push(Buffer.concat([le(4, ZIP64_LOCATOR_SIG), le(4, 0), le(8, recordOffset), le(4, 1)]));
    }
    const big = (v: number, max: number) => (this.zip64 ? max : v);
    this.push(
      Buffer.concat([
        le(4, EOCD_SIG),
        le(2, 0),
        le(2, 0),
        le(2, big(count, 0xffff)),
        le(2, big(count, 0xffff)),
        le(4, big(directorySize, 0xffffffff)),
        le(4, big(directoryOffset, 0xffffffff)),
        le(2, 0),
      ]),
    );
    return this.parts;
  }
}

/** Writes storages and the tensors viewing them as one torch.save file. */
export async function writeTorchFile(
  path: string,
  storages: readonly TorchStorage[],
  tensors: readonly TorchTensorView[],
  options: TorchSaveOptions = {},
): Promise<void> {
  const archive = options.archiveName ?? 'archive';
  const byKey = new Map(storages.map((s) => [s.key, s]));
  const zip = new ZipWriter(options.zip64 === true);
  zip.add(`${archive}/data.pkl`, pickleStateDict(byKey, tensors, options.container ?? 'OrderedDict'));
  zip.add(`${archive}/byteorder`, Buffer.from('little'));
  for (const s of storages) zip.add(`${archive}/data/${s.key}`, s.data, options.deflateStorages === true);
  zip.add(`${archive}/version`, Buffer.from('3\n'));
  zip.add(`${archive}/.data/serialization_id`, Buffer.from('1234567890123456789012345678901234567890'));
  const fh = await open(path, 'w');
  try {
    for (const part of zip.finish()) await fh.write(part);
  } finally {
    await fh.close();
  }
}

/** Row-major strides of a contiguous tensor. */
export function contiguousStride(shape: readonly number[]): number[] {
  const stride: number[] = [];
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    stride[i] = s;
    s *= shape[i]!;
  }
  return stride;
}

/** The common case: one storage per tensor, keys "0", "1", ... in order, as torch.save numbers them. */
export async function writeTorchStateDict(
  path: string,
  tensors: readonly { name: string; dtype: TensorDtype; shape: number[]; data: Uint8Array }[],
  options: TorchSaveOptions = {},
): Promise<void> {
  const storages = tensors.map((t, i) => {
    if (t.data.byteLength !== elementCount(t.shape) * DTYPE_BYTES[t.dtype])
      throw new Error(`bad size: ${t.name}`);
    return { key: String(i), dtype: t.dtype, data: t.data };
  });
  const views = tensors.map((t, i) => ({
    name: t.name,
    storage: String(i),
    storageOffset: 0,
    shape: t.shape,
    stride: contiguousStride(t.shape),
  }));
  await writeTorchFile(path, storages, views, options);
}
