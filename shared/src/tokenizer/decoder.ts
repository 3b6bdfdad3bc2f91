// Decoding ids to text as sentencepiece's Decode does for this kind of model: NORMAL and
// USER_DEFINED pieces give their text with U+2581 as a space, CONTROL pieces give nothing, the
// UNKNOWN piece gives the unknown surface, and each run of consecutive BYTE pieces is read as
// UTF-8 (see utf8.ts). Ids outside 0..pieceCount-1 are treated like CONTROL pieces: they give
// nothing and end a byte run.

import { Kind, type TokenizerTables, textOf } from './tables.ts';
import {
  announcedLength,
  cannotComplete,
  codePointAt,
  decodeByteRun,
  encodedLength,
  REPLACEMENT,
} from './utf8.ts';

const utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** Piece strings and decoded surfaces, built on first use and kept. */
export class PieceTexts {
  private readonly t: TokenizerTables;
  private readonly pieces: (string | undefined)[];
  private readonly surfaces: (string | undefined)[];

  constructor(tables: TokenizerTables) {
    this.t = tables;
    this.pieces = new Array(tables.pieceCount);
    this.surfaces = new Array(tables.pieceCount);
  }

  /** The piece as written in the model (U+2581 for spaces, <0xHH> for bytes). */
  piece(id: number): string {
    const cached = this.pieces[id];
    if (cached !== undefined) return cached;
    const t = this.t;
    const info = t.info[id]!;
    let piece: string;
    switch (t.kinds[id]) {
      case Kind.CHAR:
        piece = String.fromCodePoint(info);
        break;
      case Kind.PAIR:
        piece = this.piece(Math.floor(info / 65536)) + this.piece(info % 65536);
        break;
      case Kind.BYTE:
        piece = `<0x${info.toString(16).toUpperCase().padStart(2, '0')}>`;
        break;
      default:
        piece = utf8.decode(textOf(t, info));
    }
    this.pieces[id] = piece;
    return piece;
  }

  /** What a non-byte id contributes to decoded text. */
  surface(id: number): string {
    const cached = this.surfaces[id];
    if (cached !== undefined) return cached;
    let surface: string;
    switch (this.t.kinds[id]) {
      case Kind.CHAR:
      case Kind.PAIR:
      case Kind.TEXT:
      case Kind.USER:
        surface = this.piece(id).replaceAll('\u2581', ' ');
        break;
      case Kind.UNKNOWN:
        surface = utf8.decode(textOf(this.t, this.t.unkSurfaceRef));
        break;
      default:
        surface = '';
    }
    this.surfaces[id] = surface;
    return surface;
  }
}

/** Byte value of `id` if it is a BYTE piece, else -1 (also for ids out of range). */
function byteOf(t: TokenizerTables, id: number): number {
  return t.kinds[id] === Kind.BYTE ? t.info[id]! : -1;
}

export function decodeIds(t: TokenizerTables, texts: PieceTexts, ids: ArrayLike<number>): string {
  let out = '';
  let run: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    const byte = byteOf(t, id);
    if (byte >= 0) {
      run.push(byte);
      continue;
    }
    if (run.length > 0) {
      out += decodeByteRun(run, 0, run.length);
      run = [];
    }
    if (Number.isInteger(id) && id >= 0 && id < t.pieceCount) out += texts.surface(id);
  }
  if (run.length > 0) out += decodeByteRun(run, 0, run.length);
  return out;
}

/**
 * Turns ids pushed one at a time into text deltas. A character spelled by several byte pieces is
 * held back until it is complete (or certainly invalid), so no delta ever holds a broken
 * character, and the deltas joined always equal decodeIds of all ids pushed.
 */
export class StreamDecoder {
  private readonly t: TokenizerTables;
  private readonly texts: PieceTexts;
  /** Bytes of a character not yet decided; at most 3 wait at any time. */
  private readonly pending = new Uint8Array(4);
  private pendingLength = 0;

  constructor(tables: TokenizerTables, texts: PieceTexts) {
    this.t = tables;
    this.texts = texts;
  }

  push(id: number): string {
    const byte = byteOf(this.t, id);
    if (byte >= 0) {
      this.pending[this.pendingLength++] = byte;
      return this.drain(false);
    }
    const valid = Number.isInteger(id) && id >= 0 && id < this.t.pieceCount;
    return this.drain(true) + (valid ? this.texts.surface(id) : '');
  }

  /** Ends the stream: whatever bytes wait become U+FFFD, as decoding would make them. */
  flush(): string {
    return this.drain(true);
  }

  /** Emits the characters already decided; `runEnded` decides all of them. */
  private drain(runEnded: boolean): string {
    const p = this.pending;
    let out = '';
    let at = 0;
    while (at < this.pendingLength) {
      const cp = codePointAt(p, at, this.pendingLength);
      if (cp >= 0) {
        out += String.fromCodePoint(cp);
        at += encodedLength(cp);
      } else if (runEnded || this.complete(at) || cannotComplete(p, at, this.pendingLength)) {
        out += REPLACEMENT;
        at += 1;
      } else {
        break;
      }
    }
    p.copyWithin(0, at, this.pendingLength);
    this.pendingLength -= at;
    return out;
  }

  /** All bytes the lead byte at `at` announces have arrived, so its verdict is final. */
  private complete(at: number): boolean {
    return at + announcedLength(this.pending[at]!) <= this.pendingLength;
  }
}
