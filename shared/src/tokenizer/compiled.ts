// The compiled form: TokenizerTables written as one little-endian buffer that loads by making
// typed-array views into it, with no parsing and no copying (see README.md, "Compiled form").
//
//   0   magic "SPBPEtk\0" (8 bytes)
//   8   u32 format version        12  u32 header length (bytes)
//   16  u32 piece count           20  i32 unk id, 24 bos id, 28 eos id, 32 pad id
//   36  u32 flags (1: byte fallback, 2: space starts a word)
//   40  u32 unknown surface text reference
//   44  32 bytes SHA-256 of the source .model
//   76  11 x (u32 offset, u32 byte length) of the sections, in SECTIONS order
// Each section starts at a multiple of 8 bytes.

import { TokenizerError } from './errors.ts';
import type { TokenizerTables } from './tables.ts';

const MAGIC = [0x53, 0x50, 0x42, 0x50, 0x45, 0x74, 0x6b, 0x00]; // "SPBPEtk\0"
export const FORMAT_VERSION = 1;
const FLAG_BYTE_FALLBACK = 1;
const FLAG_SPACE_STARTS_WORD = 2;
const DIGEST_AT = 44;
const SECTIONS_AT = 76;

type ArrayKind = typeof Uint8Array | typeof Uint16Array | typeof Uint32Array;
type SectionName =
  | 'kinds'
  | 'info'
  | 'text'
  | 'ranks'
  | 'mergeKeys'
  | 'mergeIds'
  | 'charBlockIndex'
  | 'charBlocks'
  | 'astralChars'
  | 'astralIds'
  | 'byteIds';

const SECTIONS: [SectionName, ArrayKind][] = [
  ['kinds', Uint8Array],
  ['info', Uint32Array],
  ['text', Uint8Array],
  ['ranks', Uint16Array],
  ['mergeKeys', Uint32Array],
  ['mergeIds', Uint16Array],
  ['charBlockIndex', Uint16Array],
  ['charBlocks', Uint16Array],
  ['astralChars', Uint32Array],
  ['astralIds', Uint16Array],
  ['byteIds', Uint16Array],
];
const HEADER_LENGTH = SECTIONS_AT + SECTIONS.length * 8;

const align8 = (n: number) => Math.ceil(n / 8) * 8;

export function isCompiled(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b);
}

export function serializeTables(t: TokenizerTables): Uint8Array {
  let size = align8(HEADER_LENGTH);
  const placed = SECTIONS.map(([name]) => {
    const array = t[name];
    const at = size;
    size = align8(size + array.byteLength);
    return { array, at };
  });
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(8, FORMAT_VERSION, true);
  view.setUint32(12, HEADER_LENGTH, true);
  view.setUint32(16, t.pieceCount, true);
  view.setInt32(20, t.unkId, true);
  view.setInt32(24, t.bosId, true);
  view.setInt32(28, t.eosId, true);
  view.setInt32(32, t.padId, true);
  view.setUint32(
    36,
    (t.byteFallback ? FLAG_BYTE_FALLBACK : 0) | (t.spaceStartsWord ? FLAG_SPACE_STARTS_WORD : 0),
    true,
  );
  view.setUint32(40, t.unkSurfaceRef, true);
  out.set(t.sourceDigest.subarray(0, 32), DIGEST_AT);
  placed.forEach(({ array, at }, i) => {
    view.setUint32(SECTIONS_AT + i * 8, at, true);
    view.setUint32(SECTIONS_AT + i * 8 + 4, array.byteLength, true);
    out.set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength), at);
  });
  return out;
}

/** SHA-256 of the source model recorded in a compiled file of the current format, else undefined. */
export function compiledSourceDigest(bytes: Uint8Array): Uint8Array | undefined {
  if (!isCompiled(bytes) || bytes.length < HEADER_LENGTH) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(8, true) !== FORMAT_VERSION) return undefined;
  return bytes.slice(DIGEST_AT, DIGEST_AT + 32);
}

export function deserializeTables(input: Uint8Array | ArrayBuffer): TokenizerTables {
  let bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  if (!isCompiled(bytes)) throw new TokenizerError('not a compiled tokenizer (bad magic bytes)');
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new TokenizerError('compiled tokenizers need a little-endian platform');
  }
  // Typed-array views need aligned offsets; a copy is cheap next to the encoder's first use.
  if (bytes.byteOffset % 8 !== 0) bytes = bytes.slice();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < HEADER_LENGTH) throw new TokenizerError('compiled tokenizer is truncated');
  const version = view.getUint32(8, true);
  if (version !== FORMAT_VERSION) {
    throw new TokenizerError(
      `compiled tokenizer format ${version} is not ${FORMAT_VERSION}: compile it again`,
    );
  }
  const sections = {} as Record<SectionName, Uint8Array | Uint16Array | Uint32Array>;
  SECTIONS.forEach(([name, Kind], i) => {
    const at = view.getUint32(SECTIONS_AT + i * 8, true);
    const length = view.getUint32(SECTIONS_AT + i * 8 + 4, true);
    if (at % 8 !== 0 || length % Kind.BYTES_PER_ELEMENT !== 0 || at + length > bytes.length) {
      throw new TokenizerError(`compiled tokenizer section ${name} is out of bounds`);
    }
    sections[name] = new Kind(
      bytes.buffer as ArrayBuffer,
      bytes.byteOffset + at,
      length / Kind.BYTES_PER_ELEMENT,
    );
  });
  const pieceCount = view.getUint32(16, true);
  const flags = view.getUint32(36, true);
  const t: TokenizerTables = {
    pieceCount,
    unkId: view.getInt32(20, true),
    bosId: view.getInt32(24, true),
    eosId: view.getInt32(28, true),
    padId: view.getInt32(32, true),
    byteFallback: (flags & FLAG_BYTE_FALLBACK) !== 0,
    spaceStartsWord: (flags & FLAG_SPACE_STARTS_WORD) !== 0,
    unkSurfaceRef: view.getUint32(40, true),
    sourceDigest: bytes.subarray(DIGEST_AT, DIGEST_AT + 32),
    kinds: sections.kinds as Uint8Array,
    info: sections.info as Uint32Array,
    text: sections.text as Uint8Array,
    ranks: sections.ranks as Uint16Array,
    mergeKeys: sections.mergeKeys as Uint32Array,
    mergeIds: sections.mergeIds as Uint16Array,
    charBlockIndex: sections.charBlockIndex as Uint16Array,
    charBlocks: sections.charBlocks as Uint16Array,
    astralChars: sections.astralChars as Uint32Array,
    astralIds: sections.astralIds as Uint16Array,
    byteIds: sections.byteIds as Uint16Array,
  };
  checkShape(t);
  return t;
}

/** Cheap consistency checks, so a damaged file fails here rather than misbehaving later. */
function checkShape(t: TokenizerTables): void {
  const fail = (what: string) => {
    throw new TokenizerError(`compiled tokenizer is damaged: ${what}`);
  };
  if (t.kinds.length !== t.pieceCount || t.info.length !== t.pieceCount || t.ranks.length !== t.pieceCount) {
    fail('per-piece sections do not match the piece count');
  }
  const slots = t.mergeKeys.length;
  if (slots === 0 || (slots & (slots - 1)) !== 0 || t.mergeIds.length !== slots) fail('merge table size');
  if (t.charBlockIndex.length !== 256 || t.charBlocks.length % 256 !== 0) fail('character table size');
  if (t.astralIds.length !== t.astralChars.length || t.byteIds.length !== 256) fail('table sizes');
}
