// Turns a parsed SentencePiece model into TokenizerTables, refusing models whose behaviour the
// encoder does not reproduce (so a wrong model fails loudly instead of tokenizing differently).

import { TokenizerError } from './errors.ts';
import { ModelType, PieceType, type SentencePieceModel } from './model-proto.ts';
import { EMPTY_KEY, Kind, NO_ID, type TokenizerTables, textRef } from './tables.ts';

const SPACE_SYMBOL = '\u2581';
const MAX_PIECES = 0xffff; // ids must fit 16 bits with NO_ID left over
const MAX_MERGE_LOAD = 0.7;

export function buildTables(model: SentencePieceModel, sourceDigest = new Uint8Array(32)): TokenizerTables {
  checkSupported(model);
  const { pieces, trainer } = model;
  const pieceCount = pieces.length;

  const idOf = new Map<string, number>();
  pieces.forEach((p, id) => {
    if (idOf.has(p.piece)) throw unsupported(`piece ${JSON.stringify(p.piece)} is defined twice`);
    idOf.set(p.piece, id);
  });
  const isNormal = (id: number | undefined): id is number =>
    id !== undefined && pieces[id]!.type === PieceType.NORMAL;

  const kinds = new Uint8Array(pieceCount);
  const info = new Uint32Array(pieceCount);
  const text = new TextBuilder();
  const merges: { left: number; right: number; merged: number }[] = [];
  const chars = new Map<number, number>();
  const byteIds = new Uint16Array(256).fill(NO_ID);
  let spaceStartsWord = true;

  for (let id = 0; id < pieceCount; id++) {
    const { piece, type } = pieces[id]!;
    const firstWidth = piece.length > 0 && piece.codePointAt(0)! > 0xffff ? 2 : piece.length > 0 ? 1 : 0;
    const oneChar = piece.length > 0 && piece.length === firstWidth;
    if (type !== PieceType.NORMAL && oneChar && type !== PieceType.USER_DEFINED) {
      throw unsupported(`reserved piece ${JSON.stringify(piece)} is a single character`);
    }
    switch (type) {
      case PieceType.NORMAL:
        if (piece.indexOf(SPACE_SYMBOL, 1) > 0) spaceStartsWord = false;
        if (oneChar) {
          kinds[id] = Kind.CHAR;
          info[id] = piece.codePointAt(0)!;
          chars.set(info[id]!, id);
          break;
        }
        // Every split into two NORMAL pieces is a merge sentencepiece may perform; the first one
        // found is also how the decoder spells the piece.
        for (let cut = firstWidth; cut < piece.length; cut += piece.codePointAt(cut)! > 0xffff ? 2 : 1) {
          const left = idOf.get(piece.slice(0, cut));
          const right = idOf.get(piece.slice(cut));
          if (!isNormal(left) || !isNormal(right)) continue;
          merges.push({ left, right, merged: id });
          if (kinds[id] === 0) {
            kinds[id] = Kind.PAIR;
            info[id] = left * 65536 + right;
          }
        }
        if (kinds[id] === 0) {
          kinds[id] = Kind.TEXT;
          info[id] = text.add(piece);
        }
        // A character of a NORMAL piece that has no piece of its own would reach the encoder as
        // an unknown character; sentencepiece could still merge it, this encoder could not.
        for (const c of piece) {
          if (!isNormal(idOf.get(c)))
            throw unsupported(`piece ${JSON.stringify(piece)} holds an unknown character`);
        }
        break;
      case PieceType.USER_DEFINED:
        kinds[id] = Kind.USER;
        info[id] = text.add(piece);
        break;
      case PieceType.CONTROL:
        kinds[id] = Kind.CONTROL;
        info[id] = text.add(piece);
        break;
      case PieceType.UNKNOWN:
        kinds[id] = Kind.UNKNOWN;
        info[id] = text.add(piece);
        break;
      case PieceType.BYTE: {
        const m = /^<0x([0-9A-F]{2})>$/.exec(piece);
        if (!m) throw unsupported(`byte piece ${JSON.stringify(piece)} is not of the form <0xHH>`);
        const value = Number.parseInt(m[1]!, 16);
        kinds[id] = Kind.BYTE;
        info[id] = value;
        byteIds[value] = id;
        break;
      }
      default:
        throw unsupported(
          `piece ${JSON.stringify(piece)} has type ${type} (UNUSED pieces are not supported)`,
        );
    }
  }
  if (trainer.byteFallback && byteIds.includes(NO_ID))
    throw unsupported('byte fallback without all 256 byte pieces');
  if (!trainer.byteFallback) byteIds.fill(NO_ID);

  const unkSurfaceRef = text.add(trainer.unkSurface);
  const { charBlockIndex, charBlocks, astralChars, astralIds } = buildCharTable(chars);
  const { mergeKeys, mergeIds } = buildMergeTable(merges);

  return {
    pieceCount,
    unkId: trainer.unkId,
    bosId: trainer.bosId,
    eosId: trainer.eosId,
    padId: trainer.padId,
    byteFallback: trainer.byteFallback,
    spaceStartsWord,
    kinds,
    info,
    text: text.finish(),
    unkSurfaceRef,
    ranks: denseScoreRanks(model),
    mergeKeys,
    mergeIds,
    charBlockIndex,
    charBlocks,
    astralChars,
    astralIds,
    byteIds,
    sourceDigest,
  };
}

function checkSupported(model: SentencePieceModel): void {
  const { trainer, normalizer, pieces } = model;
  if (trainer.modelType !== ModelType.BPE) throw unsupported(`model type ${trainer.modelType} is not BPE`);
  if (normalizer.precompiledCharsmapLength > 0 || normalizer.normalizationRuleTsv !== '') {
    throw unsupported('only the identity normalizer is supported');
  }
  if (normalizer.addDummyPrefix) throw unsupported('add_dummy_prefix is not supported');
  if (normalizer.removeExtraWhitespaces) throw unsupported('remove_extra_whitespaces is not supported');
  if (!normalizer.escapeWhitespaces) throw unsupported('escape_whitespaces=false is not supported');
  if (trainer.treatWhitespaceAsSuffix) throw unsupported('treat_whitespace_as_suffix is not supported');
  if (model.hasDenormalizer) throw unsupported('a denormalizer is not supported');
  if (pieces.length === 0 || pieces.length > MAX_PIECES) {
    throw unsupported(`${pieces.length} pieces (1 to ${MAX_PIECES} are supported)`);
  }
  if (pieces[trainer.unkId]?.type !== PieceType.UNKNOWN)
    throw unsupported('unk_id does not name an UNKNOWN piece');
}

/** Rank 0 is the highest score; equal scores get equal ranks because sentencepiece then prefers
 * the leftmost pair whatever the pieces are. */
function denseScoreRanks(model: SentencePieceModel): Uint16Array {
  const scores = Float64Array.from(model.pieces, (p) => p.score);
  const ranks = new Uint16Array(scores.length);
  // Models list pieces by falling score, which makes this one pass; otherwise sort.
  let rank = 0;
  let inOrder = true;
  for (let id = 1; id < scores.length && inOrder; id++) {
    if (scores[id]! < scores[id - 1]!) rank++;
    else if (scores[id]! > scores[id - 1]!) inOrder = false;
    ranks[id] = rank;
  }
  if (inOrder) return ranks;
  const distinct = [...new Set(scores)].sort((a, b) => b - a);
  const rankOf = new Map(distinct.map((s, i) => [s, i]));
  return Uint16Array.from(scores, (s) => rankOf.get(s)!);
}

function buildCharTable(chars: Map<number, number>) {
  const charBlockIndex = new Uint16Array(256);
  const blocks: number[] = [];
  for (const cp of chars.keys()) {
    if (cp < 0x10000 && charBlockIndex[cp >> 8] === 0) {
      blocks.push(cp >> 8);
      charBlockIndex[cp >> 8] = blocks.length;
    }
  }
  const charBlocks = new Uint16Array(blocks.length * 256).fill(NO_ID);
  const astral: [number, number][] = [];
  for (const [cp, id] of chars) {
    if (cp < 0x10000) charBlocks[(charBlockIndex[cp >> 8]! - 1) * 256 + (cp & 0xff)] = id;
    else astral.push([cp, id]);
  }
  astral.sort((a, b) => a[0] - b[0]);
  return {
    charBlockIndex,
    charBlocks,
    astralChars: Uint32Array.from(astral, (a) => a[0]),
    astralIds: Uint16Array.from(astral, (a) => a[1]),
  };
}

/** Home slot of a merge key: the top bits of a multiplicative hash (table sizes are powers of two). */
export function mergeSlot(key: number, mask: number): number {
  return Math.imul(key, 0x9e3779b1) >>> Math.clz32(mask);
}

function buildMergeTable(merges: { left: number; right: number; merged: number }[]) {
  let size = 1024;
  while (size * MAX_MERGE_LOAD < merges.length) size *= 2;
  const mask = size - 1;
  const mergeKeys = new Uint32Array(size).fill(EMPTY_KEY);
  const mergeIds = new Uint16Array(size).fill(NO_ID);
  for (const { left, right, merged } of merges) {
    const key = left * 65536 + right;
    let slot = mergeSlot(key, mask);
    while (mergeKeys[slot] !== EMPTY_KEY) slot = (slot + 1) & mask;
    mergeKeys[slot] = key;
    mergeIds[slot] = merged;
  }
  return { mergeKeys, mergeIds };
}

class TextBuilder {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;
  private readonly encoder = new TextEncoder();

  add(s: string): number {
    const bytes = this.encoder.encode(s);
    if (bytes.length > 255) throw unsupported(`piece text longer than 255 bytes: ${JSON.stringify(s)}`);
    const ref = textRef(this.length, bytes.length);
    this.chunks.push(bytes);
    this.length += bytes.length;
    return ref;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

function unsupported(what: string): TokenizerError {
  return new TokenizerError(`unsupported SentencePiece model: ${what}`);
}
