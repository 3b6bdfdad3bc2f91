// Input that sentencepiece never sees or that stresses the encoder: lone surrogates, NUL and
// controls, ids outside the vocabulary, and megabyte-long lines. Each finishes and behaves as
// shared/src/tokenizer/README.md documents.

import { beforeAll, describe, expect, it } from 'vitest';
import type { Tokenizer } from '../../../shared/src/tokenizer/index.ts';
import { fixturesPresent, loadCompiled, readCorpus } from './fixtures.ts';

const MB = 1 << 20;
const BYTE_BASE = 75;

/** Repeats `unit` until the text is `length` code units long (cutting no surrogate pair). */
function fill(unit: string, length: number): string {
  let s = unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
  if (/[\uD800-\uDBFF]$/.test(s)) s = s.slice(0, -1);
  return s;
}

describe.skipIf(!fixturesPresent)('bad and extreme input', () => {
  let tok: Tokenizer;
  let japanese: string;
  let english: string;

  beforeAll(async () => {
    tok = await loadCompiled();
    const corpus = readCorpus().filter((r) => r.kind === 'corpus');
    japanese = corpus
      .filter((r) => r.source.startsWith('manpages-ja'))
      .map((r) => r.text.replace(/\s+/g, ''))
      .join('');
    english = corpus
      .filter((r) => r.source.startsWith('manpages:'))
      .map((r) => r.text)
      .join('\n');
  });

  it('reads a lone surrogate as U+FFFD, as a UTF-8 encoder writes it', () => {
    expect(tok.encode('\uD800')).toEqual(tok.encode('\uFFFD'));
    expect(tok.encode('a\uDC00b')).toEqual(tok.encode('a\uFFFDb'));
    expect(tok.encode('x\uD83D')).toEqual(tok.encode('x\uFFFD'));
    expect(tok.encode('\uDE00\uD83D')).toEqual(tok.encode('\uFFFD\uFFFD'));
    // A proper pair is one astral character, even right after a lone surrogate.
    expect(tok.encode('\uD800\uD83D\uDE00')).toEqual(tok.encode('\uFFFD😀'));
    expect(tok.decode(tok.encode('\uD800 x'))).toBe('\uFFFD x');
    expect(tok.countTokens('\uDFFF\uDFFF')).toBe(tok.encode('\uFFFD\uFFFD').length);
  });

  it('encodes NUL and every C0 and C1 control as its own piece or its UTF-8 byte pieces, and back', () => {
    expect(tok.encode('\0')).toEqual([BYTE_BASE]);
    expect(tok.encode('a\0b')).toEqual([...tok.encode('a'), BYTE_BASE, ...tok.encode('b')]);
    const controls = [];
    for (let c = 0; c <= 0x9f; c++) if (c < 0x20 || c >= 0x7f) controls.push(String.fromCharCode(c));
    for (const ch of controls) {
      const ids = tok.encode(ch);
      expect(tok.decode(ids)).toBe(ch);
      if (ids.length === 1 && tok.idToPiece(ids[0]!) === ch) continue; // many controls are pieces
      expect(ids).toEqual([...new TextEncoder().encode(ch)].map((b) => BYTE_BASE + b));
    }
    const mixed = controls.join('x');
    expect(tok.decode(tok.encode(mixed))).toBe(mixed);
  });

  it('decodes ids outside the vocabulary (65535, negative, fractional) to nothing', () => {
    expect(tok.decode([65535])).toBe('');
    expect(tok.decode([541, 65535, 336])).toBe('The the');
    expect(tok.decode([-1, 1.5, Number.NaN, 2 ** 40])).toBe('');
    // Like a control id, they end a byte run: E3 alone and 81 alone are both invalid.
    expect(tok.decode([BYTE_BASE + 0xe3, 65535, BYTE_BASE + 0x81])).toBe('\uFFFD\uFFFD');
    expect(tok.isValidId(65534)).toBe(true);
    expect(tok.isValidId(65535)).toBe(false);
    expect(tok.idToPiece(65535)).toBeUndefined();
    expect(tok.createStreamDecoder().push(65535)).toBe('');
  });

  it('encodes the empty string to no ids', () => {
    expect(tok.encode('')).toEqual([]);
    expect(tok.countTokens('')).toBe(0);
  });

  it('encodes a 1 MB line without spaces (Japanese) and decodes it back', () => {
    const text = fill(japanese, MB);
    const ids = tok.encode(text);
    expect(ids.length).toBeGreaterThan(MB / 8);
    expect(tok.countTokens(text)).toBe(ids.length);
    expect(tok.decode(ids)).toBe(text);
  });

  it('encodes a 1 MB line of spaced English text and decodes it back', () => {
    const text = fill(english.replace(/\n/g, ' '), MB);
    const ids = tok.encode(text);
    expect(tok.decode(ids)).toBe(text);
  });

  it('encodes 1 MB runs of one character and decodes them back', () => {
    const runs: [string, (ids: number[]) => void][] = [
      ['a', (ids) => expect(new Set(ids).size).toBeLessThan(20)],
      ['あ', () => {}],
      [' ', (ids) => expect(new Set(ids)).toEqual(new Set([18]))], // 16 spaces per piece
      ['*', (ids) => expect(new Set(ids.slice(0, -1))).toEqual(new Set([23]))], // *** is user-defined
      ['7', (ids) => expect(new Set(ids)).toEqual(new Set([11]))], // digits never merge
      ['\u{10FFFF}', (ids) => expect(ids.length).toBe(4 * (MB / 2))], // byte fallback, 4 bytes each
      ['\0', (ids) => expect(ids.length).toBe(MB)],
    ];
    for (const [ch, check] of runs) {
      const text = fill(ch, MB);
      const ids = tok.encode(text);
      expect(tok.decode(ids)).toBe(text);
      if (ch === 'a') expect(tok.countTokens(text)).toBe(ids.length);
      check(ids);
    }
    // U+2581 encodes like a space and decodes as one.
    const bars = fill('\u2581', MB);
    expect(tok.decode(tok.encode(bars))).toBe(fill(' ', MB));
  });

  it('keeps a run of one character periodic: each extra 16 characters add the same ids', () => {
    // A linear-time merge must still find sentencepiece's answer on long runs.
    const short = tok.encode('a'.repeat(4096));
    const long = tok.encode('a'.repeat(4096 + 16 * 1000));
    expect(long.slice(0, 100)).toEqual(short.slice(0, 100));
    expect(tok.decode(long)).toBe('a'.repeat(4096 + 16 * 1000));
  });
});
