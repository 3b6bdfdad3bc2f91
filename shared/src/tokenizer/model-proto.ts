// Reads the parts of a SentencePiece ModelProto (sentencepiece_model.proto) that encoding and
// decoding depend on. Field numbers and proto2 defaults follow that schema.

import { TokenizerError } from './errors.ts';
import { ProtobufError, ProtoReader, WIRE_FIXED32, WIRE_LENGTH_DELIMITED, WIRE_VARINT } from './protobuf.ts';

/** ModelProto.SentencePiece.Type */
export const PieceType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** TrainerSpec.ModelType */
export const ModelType = { UNIGRAM: 1, BPE: 2, WORD: 3, CHAR: 4 } as const;

export interface ModelPiece {
  piece: string;
  score: number;
  type: number;
}

export interface TrainerSpec {
  modelType: number;
  vocabSize: number;
  byteFallback: boolean;
  splitByUnicodeScript: boolean;
  splitByWhitespace: boolean;
  splitByNumber: boolean;
  splitDigits: boolean;
  treatWhitespaceAsSuffix: boolean;
  allowWhitespaceOnlyPieces: boolean;
  maxSentencepieceLength: number;
  userDefinedSymbols: string[];
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkSurface: string;
}

export interface NormalizerSpec {
  name: string;
  precompiledCharsmapLength: number;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
  normalizationRuleTsv: string;
}

export interface SentencePieceModel {
  pieces: ModelPiece[];
  trainer: TrainerSpec;
  normalizer: NormalizerSpec;
  hasDenormalizer: boolean;
}

export function parseModelProto(bytes: Uint8Array): SentencePieceModel {
  try {
    return readModelProto(bytes);
  } catch (err) {
    if (!(err instanceof ProtobufError)) throw err;
    throw new TokenizerError(`not a SentencePiece model (protobuf: ${err.message})`);
  }
}

function readModelProto(bytes: Uint8Array): SentencePieceModel {
  const pieces: ModelPiece[] = [];
  let trainer = defaultTrainerSpec();
  let normalizer = defaultNormalizerSpec();
  let hasDenormalizer = false;
  const r = new ProtoReader(bytes);
  while (!r.done) {
    const { field, wire } = r.key();
    if (wire !== WIRE_LENGTH_DELIMITED) {
      r.skip(wire);
    } else if (field === 1) {
      pieces.push(readPiece(r.message()));
    } else if (field === 2) {
      trainer = readTrainerSpec(r.message());
    } else if (field === 3) {
      normalizer = readNormalizerSpec(r.message());
    } else if (field === 5) {
      hasDenormalizer = true;
      r.skip(wire);
    } else {
      r.skip(wire);
    }
  }
  return { pieces, trainer, normalizer, hasDenormalizer };
}

function readPiece(r: ProtoReader): ModelPiece {
  const p: ModelPiece = { piece: '', score: 0, type: PieceType.NORMAL };
  while (!r.done) {
    const { field, wire } = r.key();
    if (field === 1 && wire === WIRE_LENGTH_DELIMITED) p.piece = r.string();
    else if (field === 2 && wire === WIRE_FIXED32) p.score = r.float();
    else if (field === 3 && wire === WIRE_VARINT) p.type = r.int32();
    else r.skip(wire);
  }
  return p;
}

function defaultTrainerSpec(): TrainerSpec {
  return {
    modelType: ModelType.UNIGRAM,
    vocabSize: 8000,
    byteFallback: false,
    splitByUnicodeScript: true,
    splitByWhitespace: true,
    splitByNumber: true,
    splitDigits: false,
    treatWhitespaceAsSuffix: false,
    allowWhitespaceOnlyPieces: false,
    maxSentencepieceLength: 16,
    userDefinedSymbols: [],
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkSurface: ' \u2047 ',
  };
}

function readTrainerSpec(r: ProtoReader): TrainerSpec {
  const t = defaultTrainerSpec();
  while (!r.done) {
    const { field, wire } = r.key();
    if (wire === WIRE_VARINT) {
      switch (field) {
        case 3:
          t.modelType = r.int32();
          break;
        case 4:
          t.vocabSize = r.int32();
          break;
        case 20:
          t.maxSentencepieceLength = r.int32();
          break;
        case 21:
          t.splitByUnicodeScript = r.bool();
          break;
        case 22:
          t.splitByWhitespace = r.bool();
          break;
        case 23:
          t.splitByNumber = r.bool();
          break;
        case 24:
          t.treatWhitespaceAsSuffix = r.bool();
          break;
        case 25:
          t.splitDigits = r.bool();
          break;
        case 26:
          t.allowWhitespaceOnlyPieces = r.bool();
          break;
        case 35:
          t.byteFallback = r.bool();
          break;
        case 40:
          t.unkId = r.int32();
          break;
        case 41:
          t.bosId = r.int32();
          break;
        case 42:
          t.eosId = r.int32();
          break;
        case 43:
          t.padId = r.int32();
          break;
        default:
          r.skip(wire);
      }
    } else if (wire === WIRE_LENGTH_DELIMITED && field === 31) {
      t.userDefinedSymbols.push(r.string());
    } else if (wire === WIRE_LENGTH_DELIMITED && field === 44) {
      t.unkSurface = r.string();
    } else {
      r.skip(wire);
    }
  }
  return t;
}

function defaultNormalizerSpec(): NormalizerSpec {
  return {
    name: '',
    precompiledCharsmapLength: 0,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
    normalizationRuleTsv: '',
  };
}

function readNormalizerSpec(r: ProtoReader): NormalizerSpec {
  const n = defaultNormalizerSpec();
  while (!r.done) {
    const { field, wire } = r.key();
    if (wire === WIRE_LENGTH_DELIMITED && field === 1) n.name = r.string();
    else if (wire === WIRE_LENGTH_DELIMITED && field === 2)
      n.precompiledCharsmapLength = r.bytesField().length;
    else if (wire === WIRE_VARINT && field === 3) n.addDummyPrefix = r.bool();
    else if (wire === WIRE_VARINT && field === 4) n.removeExtraWhitespaces = r.bool();
    else if (wire === WIRE_VARINT && field === 5) n.escapeWhitespaces = r.bool();
    else if (wire === WIRE_LENGTH_DELIMITED && field === 6) n.normalizationRuleTsv = r.string();
    else r.skip(wire);
  }
  return n;
}
