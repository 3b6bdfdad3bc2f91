// Every record of the dev corpus and every decode case, through both loaders: the ids and texts
// must be exactly what sentencepiece produced.

import { beforeAll, describe, expect, it } from 'vitest';
import type { Tokenizer } from '../../../shared/src/tokenizer/index.ts';
import {
  type CorpusRecord,
  type DecodeCase,
  fixturesPresent,
  loadBothForms,
  readCorpus,
  readDecodeCases,
  reportMismatches,
  sameIds,
} from './fixtures.ts';

const clip = (s: string) => (s.length > 120 ? `${s.slice(0, 120)}…` : s);

describe.skipIf(!fixturesPresent)('nerdstash v1 exactness against sentencepiece', () => {
  let corpus: CorpusRecord[];
  let cases: DecodeCase[];
  let forms: [string, Tokenizer][];

  beforeAll(async () => {
    corpus = readCorpus();
    cases = readDecodeCases();
    const { fromModel, fromCompiled } = await loadBothForms();
    forms = [
      ['.model', fromModel],
      ['compiled', fromCompiled],
    ];
  });

  it('reads the whole corpus', () => {
    expect(corpus.length).toBe(6802);
    expect(cases.length).toBe(2451);
  });

  for (const form of ['.model', 'compiled']) {
    it(`encode(text) equals ids for every corpus record (${form})`, () => {
      const tok = forms.find(([name]) => name === form)![1];
      const mismatches = [];
      for (const r of corpus) {
        const got = tok.encode(r.text);
        if (!sameIds(got, r.ids)) {
          mismatches.push({
            id: r.id,
            source: r.source,
            text: clip(r.text),
            expected: r.ids.slice(0, 40),
            got: got.slice(0, 40),
          });
        }
      }
      expect(reportMismatches(`encode ${form}`, mismatches)).toEqual({ count: 0, first: [] });
    });
  }

  for (const form of ['.model', 'compiled']) {
    it(`countTokens(text) equals the number of ids (${form})`, () => {
      const tok = forms.find(([name]) => name === form)![1];
      const mismatches = corpus
        .filter((r) => tok.countTokens(r.text) !== r.ids.length)
        .map((r) => ({ id: r.id, expected: r.ids.length, got: tok.countTokens(r.text) }));
      expect(reportMismatches(`countTokens ${form}`, mismatches)).toEqual({ count: 0, first: [] });
    });

    it(`decode(ids) equals decoded for every corpus record (${form})`, () => {
      const tok = forms.find(([name]) => name === form)![1];
      const mismatches = [];
      for (const r of corpus) {
        const got = tok.decode(r.ids);
        if (got !== r.decoded) mismatches.push({ id: r.id, expected: clip(r.decoded), got: clip(got) });
      }
      expect(reportMismatches(`decode ${form}`, mismatches)).toEqual({ count: 0, first: [] });
    });

    it(`decode(ids) and the pieces match every decode case (${form})`, () => {
      const tok = forms.find(([name]) => name === form)![1];
      const mismatches = [];
      for (const c of cases) {
        const got = tok.decode(c.ids);
        const pieces = c.ids.map((id) => tok.idToPiece(id));
        if (got !== c.decoded || pieces.some((p, i) => p !== c.pieces[i])) {
          mismatches.push({ ids: c.ids, note: c.note, expected: c.decoded, got, pieces });
        }
      }
      expect(reportMismatches(`decode cases ${form}`, mismatches)).toEqual({ count: 0, first: [] });
    });
  }

  it('gives the recorded pieces for every record that has them', () => {
    const tok = forms[1]![1];
    const mismatches = [];
    for (const r of corpus) {
      if (!r.pieces) continue;
      const pieces = tok.encode(r.text).map((id) => tok.idToPiece(id));
      if (pieces.some((p, i) => p !== r.pieces![i]) || pieces.length !== r.pieces.length) {
        mismatches.push({ id: r.id, expected: r.pieces.slice(0, 20), got: pieces.slice(0, 20) });
      }
    }
    expect(reportMismatches('pieces', mismatches)).toEqual({ count: 0, first: [] });
  });

  it('reproduces the behaviour the fixture README lists', () => {
    const tok = forms[1]![1];
    expect(tok.encode('The quick brown fox jumps over the goblin.')).toEqual([
      541, 1939, 6573, 22820, 22734, 712, 336, 34477, 49230,
    ]);
    expect(tok.encode(' ')).toEqual([49209]);
    expect(tok.encode('\u2581')).toEqual([49209]);
    expect(tok.encode('  two')).toEqual([14, 13531]);
    expect(tok.encode('in 1990 the').map((id) => tok.idToPiece(id))).toEqual([
      'in',
      '▁',
      '1',
      '9',
      '9',
      '0',
      '▁the',
    ]);
    expect(tok.encode('\n')).toEqual([85]);
    expect(tok.encode('\t')).toEqual([84]);
    expect(tok.encode('\r\n')).toEqual([88, 85]);
    expect(tok.encode('\0')).toEqual([75]);
    expect(tok.encode('𠀋')).toEqual([315, 235, 203, 214]);
    expect(tok.encode('<|endoftext|>').map((id) => tok.idToPiece(id))).toEqual([
      '<',
      '|',
      'end',
      'of',
      'text',
      '|',
      '>',
    ]);
    expect(tok.decode([0, 2, 3])).toBe('');
    expect(tok.decode([1])).toBe(' ⁇ ');
    expect(tok.decode([75 + 0xe2, 75 + 0x96, 75 + 0x81])).toBe('\u2581');
    expect(tok.decode([336])).toBe(' the');
    expect(tok.decode([75 + 0xe3, 75 + 0x81])).toBe('\uFFFD\uFFFD');
  });
});
