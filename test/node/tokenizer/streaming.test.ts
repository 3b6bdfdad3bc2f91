// The streaming detokenizer: ids pushed one at a time give deltas that join to decode(all ids),
// and no delta ever carries part of a character.

import { beforeAll, describe, expect, it } from 'vitest';
import type { Tokenizer } from '../../../shared/src/tokenizer/index.ts';
import { fixturesPresent, loadCompiled, readCorpus, readDecodeCases, reportMismatches } from './fixtures.ts';

const BYTE_BASE = 75; // <0x00>
const byteIds = (bytes: number[]) => bytes.map((b) => BYTE_BASE + b);
const LONE_SURROGATE = /\p{Surrogate}/u;

function streamDeltas(tok: Tokenizer, ids: number[]): string[] {
  const stream = tok.createStreamDecoder();
  const deltas = ids.map((id) => stream.push(id));
  deltas.push(stream.flush());
  return deltas;
}

/** Deltas that hold a lone surrogate, or U+FFFD where decode has none at that offset. */
function brokenDeltas(deltas: string[], decoded: string): string[] {
  const broken: string[] = [];
  let offset = 0;
  for (const d of deltas) {
    if (LONE_SURROGATE.test(d)) broken.push(d);
    for (let i = d.indexOf('\uFFFD'); i >= 0; i = d.indexOf('\uFFFD', i + 1)) {
      if (decoded[offset + i] !== '\uFFFD') broken.push(d);
    }
    offset += d.length;
  }
  return broken;
}

describe.skipIf(!fixturesPresent)('streaming detokenizer', () => {
  let tok: Tokenizer;

  beforeAll(async () => {
    tok = await loadCompiled();
  });

  it('joins to decode(all ids) over the whole corpus, with no broken character in any delta', () => {
    const mismatches = [];
    for (const r of readCorpus()) {
      const deltas = streamDeltas(tok, r.ids);
      const joined = deltas.join('');
      const broken = brokenDeltas(deltas, r.decoded);
      if (joined !== r.decoded || broken.length > 0)
        mismatches.push({ id: r.id, joinedOk: joined === r.decoded, broken });
    }
    expect(reportMismatches('stream corpus', mismatches)).toEqual({ count: 0, first: [] });
  });

  it('joins to decode(ids) for every decode case (truncated and lead-less byte runs included)', () => {
    const mismatches = [];
    for (const c of readDecodeCases()) {
      const deltas = streamDeltas(tok, c.ids);
      const broken = brokenDeltas(deltas, c.decoded);
      if (deltas.join('') !== c.decoded || broken.length > 0)
        mismatches.push({ ids: c.ids, deltas, expected: c.decoded });
    }
    expect(reportMismatches('stream decode cases', mismatches)).toEqual({ count: 0, first: [] });
  });

  it('holds back a character spread over byte pieces until its last byte', () => {
    // 𠀋 is F0 A0 80 8B; あ is E3 81 82
    expect(streamDeltas(tok, byteIds([0xf0, 0xa0, 0x80, 0x8b]))).toEqual(['', '', '', '𠀋', '']);
    expect(streamDeltas(tok, [...byteIds([0xe3, 0x81, 0x82]), 336])).toEqual(['', '', 'あ', ' the', '']);
  });

  it('replaces an unfinished character only once the byte run ends, one U+FFFD per byte', () => {
    expect(streamDeltas(tok, [...byteIds([0xe3, 0x81]), 336])).toEqual(['', '', '\uFFFD\uFFFD the', '']);
    expect(streamDeltas(tok, byteIds([0xe3, 0x81]))).toEqual(['', '', '\uFFFD\uFFFD']);
    // A control id or an id outside the vocabulary also ends the run (a lone 0x81 then cannot
    // start a character, so it is replaced at once).
    expect(streamDeltas(tok, [...byteIds([0xe3]), 3, ...byteIds([0x81])])).toEqual([
      '',
      '\uFFFD',
      '\uFFFD',
      '',
    ]);
    expect(streamDeltas(tok, [...byteIds([0xe3]), 65535, ...byteIds([0x81])])).toEqual([
      '',
      '\uFFFD',
      '\uFFFD',
      '',
    ]);
  });

  it('emits U+FFFD as soon as a sequence can no longer complete', () => {
    // E3 then "A": E3 can never start a valid character any more.
    expect(streamDeltas(tok, byteIds([0xe3, 0x41]))).toEqual(['', '\uFFFDA', '']);
    expect(streamDeltas(tok, byteIds([0x80, 0xff]))).toEqual(['\uFFFD', '\uFFFD', '']);
    // Overlong and surrogate encodings are decided once complete.
    expect(streamDeltas(tok, byteIds([0xe0, 0x80, 0x80]))).toEqual(['', '', '\uFFFD\uFFFD\uFFFD', '']);
    expect(streamDeltas(tok, byteIds([0xed, 0xa0, 0x80]))).toEqual(['', '', '\uFFFD\uFFFD\uFFFD', '']);
  });

  it('gives independent streams', () => {
    const a = tok.createStreamDecoder();
    const b = tok.createStreamDecoder();
    expect(a.push(BYTE_BASE + 0xe3)).toBe('');
    expect(b.push(336)).toBe(' the');
    expect(a.push(BYTE_BASE + 0x81)).toBe('');
    expect(a.push(BYTE_BASE + 0x82)).toBe('あ');
    expect(b.flush()).toBe('');
  });
});
