// The protobuf reader on hand-built messages, and the model facts the issue states, read from
// the real nerdstash v1 file.

import { describe, expect, it } from 'vitest';
import { ModelType, PieceType, parseModelProto } from '../../../shared/src/tokenizer/model-proto.ts';
import { ProtobufError, ProtoReader } from '../../../shared/src/tokenizer/protobuf.ts';
import { fixturesPresent, readModel } from './fixtures.ts';

/** Encodes an unsigned varint (test helper for building messages by hand). */
function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

const key = (field: number, wire: number) => varint(field * 8 + wire);
const lengthDelimited = (field: number, payload: number[]) => [
  ...key(field, 2),
  ...varint(payload.length),
  ...payload,
];
const utf8 = (s: string) => [...new TextEncoder().encode(s)];
const float32 = (x: number) => [...new Uint8Array(new Float32Array([x]).buffer)];

describe('ProtoReader', () => {
  it('reads varints, negative int32, floats, strings and skips unknown fields', () => {
    const bytes = new Uint8Array([
      ...key(1, 0),
      ...varint(300),
      ...key(2, 0),
      ...varint(2n ** 64n - 5n), // int32 -5 is sign-extended to ten bytes
      ...key(3, 5),
      ...float32(-1.5),
      ...key(9, 1),
      ...[1, 2, 3, 4, 5, 6, 7, 8], // unknown fixed64
      ...lengthDelimited(4, utf8('\uFEFFé▁')),
    ]);
    const r = new ProtoReader(bytes);
    expect(r.key()).toEqual({ field: 1, wire: 0 });
    expect(r.varint()).toBe(300);
    expect(r.key()).toEqual({ field: 2, wire: 0 });
    expect(r.int32()).toBe(-5);
    expect(r.key()).toEqual({ field: 3, wire: 5 });
    expect(r.float()).toBe(-1.5);
    r.skip(r.key().wire);
    expect(r.key()).toEqual({ field: 4, wire: 2 });
    expect(r.string()).toBe('\uFEFFé▁'); // a leading U+FEFF is kept
    expect(r.done).toBe(true);
  });

  it('rejects truncated input and unknown wire types with ProtobufError', () => {
    expect(() => new ProtoReader(new Uint8Array([0x80])).varint()).toThrow(ProtobufError);
    expect(() => new ProtoReader(new Uint8Array([...key(1, 2), 5, 1, 2])).skip(2)).toThrow(ProtobufError);
    const r = new ProtoReader(new Uint8Array([...key(1, 2), 5, 1, 2]));
    r.key();
    expect(() => r.bytesField()).toThrow(/truncated/);
    expect(() => new ProtoReader(new Uint8Array([1])).skip(3)).toThrow(/wire type 3/);
    expect(() =>
      new ProtoReader(new Uint8Array([...lengthDelimited(1, [0xff])])).message().string(),
    ).toThrow();
  });

  it('parses a minimal ModelProto with proto2 defaults', () => {
    const piece = lengthDelimited(1, [...lengthDelimited(1, utf8('▁a')), ...key(2, 5), ...float32(-2)]);
    const trainer = lengthDelimited(2, [
      ...key(3, 0),
      2,
      ...key(35, 0),
      1,
      ...lengthDelimited(31, utf8('xy')),
    ]);
    const m = parseModelProto(new Uint8Array([...piece, ...trainer]));
    expect(m.pieces).toEqual([{ piece: '▁a', score: -2, type: PieceType.NORMAL }]);
    expect(m.trainer.modelType).toBe(ModelType.BPE);
    expect(m.trainer.byteFallback).toBe(true);
    expect(m.trainer.userDefinedSymbols).toEqual(['xy']);
    expect(m.trainer.unkId).toBe(0);
    expect(m.normalizer.addDummyPrefix).toBe(true);
    expect(m.hasDenormalizer).toBe(false);
  });
});

describe.skipIf(!fixturesPresent)('nerdstash v1 model facts', () => {
  const model = fixturesPresent ? parseModelProto(readModel()) : undefined;

  it('is a BPE model with an identity normalizer and the documented flags', () => {
    const { trainer, normalizer } = model!;
    expect(trainer.modelType).toBe(ModelType.BPE);
    expect(normalizer.name).toBe('identity');
    expect(normalizer.precompiledCharsmapLength).toBe(0);
    expect(normalizer.addDummyPrefix).toBe(false);
    expect(normalizer.removeExtraWhitespaces).toBe(false);
    expect(normalizer.escapeWhitespaces).toBe(true);
    expect(trainer.byteFallback).toBe(true);
    expect(trainer.splitByUnicodeScript).toBe(true);
    expect(trainer.splitByWhitespace).toBe(true);
    expect(trainer.splitByNumber).toBe(true);
    expect(trainer.splitDigits).toBe(false);
    expect(trainer.treatWhitespaceAsSuffix).toBe(false);
    expect(trainer.allowWhitespaceOnlyPieces).toBe(true);
    expect(trainer.maxSentencepieceLength).toBe(16);
    expect(trainer.vocabSize).toBe(65535);
    expect(model!.hasDenormalizer).toBe(false);
  });

  it('has 65,535 pieces with the documented special ids and layout', () => {
    const { pieces, trainer } = model!;
    expect(pieces.length).toBe(65535);
    expect([trainer.padId, trainer.unkId, trainer.bosId, trainer.eosId]).toEqual([0, 1, 2, 3]);
    expect(pieces.slice(0, 4).map((p) => [p.piece, p.type])).toEqual([
      ['<|pad|>', PieceType.CONTROL],
      ['<|unknown|>', PieceType.UNKNOWN],
      ['<|startoftext|>', PieceType.CONTROL],
      ['<|endoftext|>', PieceType.CONTROL],
    ]);
    expect(trainer.unkSurface).toBe(' \u2047 ');
    const userDefined = pieces.slice(4, 75);
    expect(userDefined.every((p) => p.type === PieceType.USER_DEFINED)).toBe(true);
    expect(userDefined.map((p) => p.piece)).toEqual(trainer.userDefinedSymbols);
    expect(trainer.userDefinedSymbols.length).toBe(71);
    expect(userDefined.slice(0, 15).map((p) => p.piece)).toEqual([
      ...'0123456789',
      '▁▁',
      '▁'.repeat(4),
      '▁'.repeat(8),
      '▁'.repeat(12),
      '▁'.repeat(16),
    ]);
    const bytes = pieces.slice(75, 331);
    expect(bytes.map((p) => p.piece)).toEqual(
      Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`),
    );
    expect(bytes.every((p) => p.type === PieceType.BYTE)).toBe(true);
    const normal = pieces.slice(331);
    expect(normal.every((p, i) => p.type === PieceType.NORMAL && p.score === -i)).toBe(true);
    expect(new Set(pieces.map((p) => p.piece)).size).toBe(pieces.length);
  });
});
