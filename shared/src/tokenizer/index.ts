// Public API of the nerdstash v1 (SentencePiece BPE) tokenizer. Runs unchanged in Workers and
// Node: it uses only Uint8Array, TextEncoder/TextDecoder and Web Crypto. Behaviour for odd input
// is documented in README.md next to this file.

import { buildTables } from './build-tables.ts';
import { compiledSourceDigest, deserializeTables, isCompiled, serializeTables } from './compiled.ts';
import { decodeIds, PieceTexts, StreamDecoder } from './decoder.ts';
import { BpeEncoder, IdList } from './encoder.ts';
import { parseModelProto } from './model-proto.ts';
import type { TokenizerTables } from './tables.ts';

export { compiledSourceDigest, FORMAT_VERSION, isCompiled } from './compiled.ts';
export type { StreamDecoder } from './decoder.ts';
export { TokenizerError } from './errors.ts';

export class Tokenizer {
  private readonly tables: TokenizerTables;
  private encoder: BpeEncoder | undefined;
  private texts: PieceTexts | undefined;
  private readonly scratch = new IdList();

  private constructor(tables: TokenizerTables) {
    this.tables = tables;
  }

  /** Loads an original SentencePiece .model file (protobuf). */
  static fromSentencePiece(bytes: Uint8Array): Tokenizer {
    return new Tokenizer(buildTables(parseModelProto(bytes)));
  }

  /** Loads the compiled form (see compileTokenizer): typed-array views, no parsing. */
  static fromCompiled(bytes: Uint8Array | ArrayBuffer): Tokenizer {
    return new Tokenizer(deserializeTables(bytes));
  }

  /** Loads either form, told apart by the compiled form's magic bytes. */
  static load(bytes: Uint8Array): Tokenizer {
    return isCompiled(bytes) ? Tokenizer.fromCompiled(bytes) : Tokenizer.fromSentencePiece(bytes);
  }

  /** Number of ids the tokenizer defines (0 .. pieceCount - 1). */
  get pieceCount(): number {
    return this.tables.pieceCount;
  }

  /** Same as pieceCount: the tokenizer's vocabulary. The model's embedding may have more rows. */
  get vocabSize(): number {
    return this.tables.pieceCount;
  }

  get unkId(): number {
    return this.tables.unkId;
  }

  get bosId(): number {
    return this.tables.bosId;
  }

  get eosId(): number {
    return this.tables.eosId;
  }

  get padId(): number {
    return this.tables.padId;
  }

  /** SHA-256 of the .model the compiled form was made from (all zeros when loaded from a .model). */
  get sourceDigest(): Uint8Array {
    return this.tables.sourceDigest;
  }

  /** Token ids of `text`, as sentencepiece's encode gives them (no BOS or EOS added). */
  encode(text: string): number[] {
    const list = this.encodeRaw(text);
    const ids = new Array<number>(list.length);
    for (let i = 0; i < list.length; i++) ids[i] = list.ids[i]!; // much faster than Array.from
    list.shrink();
    return ids;
  }

  /** Same as encode(text).length, without building the id array. */
  countTokens(text: string): number {
    const list = this.encodeRaw(text);
    const count = list.length;
    list.shrink();
    return count;
  }

  /** Text of `ids`, as sentencepiece's decode gives it. Ids outside 0..pieceCount-1 give nothing. */
  decode(ids: ArrayLike<number>): string {
    return decodeIds(this.tables, this.pieceTexts(), ids);
  }

  /** A decoder for ids that arrive one at a time; see StreamDecoder. */
  createStreamDecoder(): StreamDecoder {
    return new StreamDecoder(this.tables, this.pieceTexts());
  }

  /** True for an integer id the tokenizer defines. */
  isValidId(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.tables.pieceCount;
  }

  /** The piece string of an id (U+2581 for spaces, <0xHH> for bytes), or undefined if out of range. */
  idToPiece(id: number): string | undefined {
    return this.isValidId(id) ? this.pieceTexts().piece(id) : undefined;
  }

  private encodeRaw(text: string): IdList {
    this.encoder ??= new BpeEncoder(this.tables);
    const out = this.scratch;
    out.length = 0;
    this.encoder.encode(String(text), out);
    return out;
  }

  private pieceTexts(): PieceTexts {
    this.texts ??= new PieceTexts(this.tables);
    return this.texts;
  }
}

/**
 * Compiles a SentencePiece .model into the compact binary form that Tokenizer.fromCompiled loads.
 * The SHA-256 of the model is stored in the header, so builds can tell when it is stale.
 */
export async function compileTokenizer(modelBytes: Uint8Array): Promise<Uint8Array> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new Uint8Array(modelBytes)));
  return serializeTables(buildTables(parseModelProto(modelBytes), digest));
}

/** True when `compiled` is a current-format compiled tokenizer made from a model with this SHA-256. */
export function isCompiledFrom(compiled: Uint8Array, modelSha256: Uint8Array): boolean {
  const digest = compiledSourceDigest(compiled);
  return (
    digest !== undefined &&
    digest.length === modelSha256.length &&
    digest.every((b, i) => b === modelSha256[i])
  );
}
