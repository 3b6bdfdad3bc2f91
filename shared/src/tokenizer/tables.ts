// The tokenizer's whole state as flat typed arrays. Both loaders produce this shape: the
// SentencePiece loader builds it from the protobuf, the compiled loader views it straight out of
// the compiled bytes. Encoder and decoder read nothing else.

/** How a piece id is stored and what it decodes to. */
export const Kind = {
  /** NORMAL piece of one code point; info = the code point. */
  CHAR: 1,
  /** NORMAL piece that is the concatenation of two NORMAL pieces; info = left * 65536 + right. */
  PAIR: 2,
  /** NORMAL piece kept as text (e.g. the empty piece); info = text reference. */
  TEXT: 3,
  /** USER_DEFINED piece: matched whole in the input, never merged; info = text reference. */
  USER: 4,
  /** CONTROL piece (pad, bos, eos): never produced by encode, decodes to nothing; info = text reference. */
  CONTROL: 5,
  /** UNKNOWN piece: decodes to the unknown surface; info = text reference. */
  UNKNOWN: 6,
  /** BYTE piece <0xHH>; info = the byte value. */
  BYTE: 7,
} as const;

/** No piece: marks empty cells in the character and merge tables. */
export const NO_ID = 0xffff;
/** Empty slot in the merge hash table (no real key reaches it: ids stay below 65535). */
export const EMPTY_KEY = 0xffffffff;

export interface TokenizerTables {
  pieceCount: number;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  byteFallback: boolean;
  /** True when no NORMAL piece holds U+2581 after its first character, so a merge never crosses
   * the start of a space symbol and the text can be cut into independent words there. */
  spaceStartsWord: boolean;
  /** Per id: a Kind value. */
  kinds: Uint8Array;
  /** Per id: meaning depends on the kind (see Kind). Text references are offset * 256 + length. */
  info: Uint32Array;
  /** UTF-8 text of TEXT, USER, CONTROL and UNKNOWN pieces, and the unknown surface. */
  text: Uint8Array;
  /** Text reference of what the unknown id decodes to (trainer_spec.unk_surface). */
  unkSurfaceRef: number;
  /** Per id: merge priority, 0 first. Equal scores share a rank, as they tie in sentencepiece. */
  ranks: Uint16Array;
  /** Open-addressing hash table: key left * 65536 + right, value the merged id. */
  mergeKeys: Uint32Array;
  mergeIds: Uint16Array;
  /** BMP code point -> id of its one-character NORMAL piece: blockIndex[cp >> 8] is 1 + block number. */
  charBlockIndex: Uint16Array;
  charBlocks: Uint16Array;
  /** Astral code points with a one-character NORMAL piece, ascending, and their ids. */
  astralChars: Uint32Array;
  astralIds: Uint16Array;
  /** Byte value -> id of its <0xHH> piece (NO_ID without byte fallback). */
  byteIds: Uint16Array;
  /** SHA-256 of the source .model (zeros if the caller gave none): lets a build detect staleness. */
  sourceDigest: Uint8Array;
}

export function textRef(offset: number, length: number): number {
  return offset * 256 + length;
}

export function textOf(tables: TokenizerTables, ref: number): Uint8Array {
  const offset = Math.floor(ref / 256);
  return tables.text.subarray(offset, offset + (ref % 256));
}
