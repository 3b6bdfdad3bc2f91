// The command-line contract, through a child process exactly as outside checks call it:
// `node scripts/cli.ts tokenize|detokenize --tokenizer PATH --jsonl FILE` and
// `node scripts/cli.ts tokenizer compile --model PATH --out PATH`.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tokenizer } from '../../../shared/src/tokenizer/index.ts';
import { type CorpusRecord, fixturesPresent, MODEL_PATH, readCorpus, readDecodeCases } from './fixtures.ts';

const NODE = path.resolve('node_modules/.bin/node');

function cli(args: string[], input?: string) {
  const r = spawnSync(NODE, ['scripts/cli.ts', ...args], { encoding: 'utf8', input, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const outputLines = (stdout: string) => stdout.split('\n').slice(0, -1);

describe.skipIf(!fixturesPresent)('tokenizer command line', () => {
  let dir: string;
  let records: CorpusRecord[];
  let textsFile: string;
  let compiledPath: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tokenizer-cli-'));
    // Every adversarial record and a slice of real text, each written as the fixtures are.
    records = readCorpus().filter((r, i) => r.kind === 'adversarial' || i % 20 === 0);
    textsFile = path.join(dir, 'texts.jsonl');
    writeFileSync(
      textsFile,
      `${records.map((r) => JSON.stringify({ id: r.id, text: r.text })).join('\n')}\n`,
    );
    compiledPath = path.join(dir, 'out', 'nerdstash-v1.bin');
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('tokenizer compile writes a compiled tokenizer and reports on stderr only', () => {
    const r = cli(['tokenizer', 'compile', '--model', MODEL_PATH, '--out', compiledPath]);
    expect(r.stderr).toContain(compiledPath);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    const tok = Tokenizer.fromCompiled(new Uint8Array(readFileSync(compiledPath)));
    expect(tok.encode('The quick brown fox')).toEqual([541, 1939, 6573, 22820]);
  });

  for (const form of ['.model', 'compiled']) {
    it(`tokenize prints one id array per line, in order (${form})`, () => {
      const r = cli([
        'tokenize',
        '--tokenizer',
        form === '.model' ? MODEL_PATH : compiledPath,
        '--jsonl',
        textsFile,
      ]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const lines = outputLines(r.stdout);
      expect(lines.length).toBe(records.length);
      const mismatches = records
        .filter((rec, i) => lines[i] !== JSON.stringify(rec.ids))
        .map((rec) => rec.id);
      expect(mismatches).toEqual([]);
    });
  }

  it('detokenize prints one JSON string per line for every decode case and corpus record', () => {
    const cases = [...readDecodeCases(), ...records];
    const file = path.join(dir, 'ids.jsonl');
    writeFileSync(file, `${cases.map((c) => JSON.stringify({ ids: c.ids })).join('\n')}\n`);
    const r = cli(['detokenize', '--tokenizer', compiledPath, '--jsonl', file]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = outputLines(r.stdout);
    expect(lines.length).toBe(cases.length);
    const mismatches = cases.filter((c, i) => JSON.parse(lines[i]!) !== c.decoded).map((c) => c.ids);
    expect(mismatches).toEqual([]);
  });

  it('reads stdin with --jsonl -, skips blank lines and keeps one line per record', () => {
    const input = '{"text": "a b"}\n\n{"text": ""}\r\n{"text": "\\ud800"}\n';
    const r = cli(['tokenize', '--tokenizer', compiledPath, '--jsonl', '-'], input);
    expect(r.status).toBe(0);
    const tok = Tokenizer.fromCompiled(new Uint8Array(readFileSync(compiledPath)));
    expect(outputLines(r.stdout)).toEqual([
      JSON.stringify(tok.encode('a b')),
      '[]',
      JSON.stringify(tok.encode('\uFFFD')),
    ]);
  });

  it('fails with a message on stderr, nothing on stdout and a non-zero status', () => {
    const bad = path.join(dir, 'bad.jsonl');
    const cases: [string[], string | undefined, RegExp][] = [
      [
        ['tokenize', '--tokenizer', path.join(dir, 'nope.model'), '--jsonl', textsFile],
        undefined,
        /cannot read tokenizer/,
      ],
      [['tokenize', '--tokenizer', textsFile, '--jsonl', textsFile], undefined, /not a SentencePiece model/],
      [['tokenize', '--jsonl', textsFile], undefined, /missing --tokenizer/],
      [
        ['tokenize', '--tokenizer', compiledPath, '--jsonl', bad],
        '{"text": "ok"}\n{"text": 5}\n',
        /line 2: "text"/,
      ],
      [
        ['tokenize', '--tokenizer', compiledPath, '--jsonl', bad],
        '{"text": "ok"}\nnot json\n',
        /line 2: not valid JSON/,
      ],
      [['detokenize', '--tokenizer', compiledPath, '--jsonl', bad], '{"ids": [1, -2]}\n', /line 1: "ids"/],
      [['tokenizer', 'build'], undefined, /unknown tokenizer command/],
      [
        ['tokenizer', 'compile', '--model', path.join(dir, 'nope.model'), '--out', bad],
        undefined,
        /cannot read model/,
      ],
    ];
    for (const [args, content, message] of cases) {
      if (content !== undefined) writeFileSync(bad, content);
      const r = cli(args);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });
});
