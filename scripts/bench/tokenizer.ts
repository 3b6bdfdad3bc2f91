// `npm run bench:tokenizer`: the TypeScript tokenizer next to @agnai/sentencepiece-js (the
// sentencepiece C++ library compiled to WebAssembly), measured in the same run, one thread.
// Prints:
//   - throughput over ../shared/fixtures/tokenizer/dev-corpus.jsonl, one encode per sample
//     (tokens/s, MB/s of UTF-8 input), best and median of several interleaved rounds, and the
//     ratio to the WASM baseline;
//   - isolate start: a new process loads the compiled form and encodes a first prompt;
//   - compiled size and heap used;
//   - a linearity table: encode time for inputs of growing length.
// Options: --rounds N (default 7).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sentencepieceJs from '@agnai/sentencepiece-js';
import { Tokenizer } from '../../shared/src/tokenizer/index.ts';
import { ensureCompiledTokenizer, findTokenizerModel, REPO_ROOT } from '../lib/tokenizer-asset.ts';

const START_PROMPT =
  '吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。 The quick brown fox jumps over the lazy dog.';

interface Encoder {
  name: string;
  encode(text: string): ArrayLike<number>;
}

/** Child mode: what a fresh Worker isolate does first. Prints one JSON line. */
async function startChild(compiledPath: string): Promise<void> {
  const bytes = readFileSync(compiledPath); // a Data module is already in memory in a Worker
  const gc = (globalThis as { gc?: () => void }).gc;
  // The module is already imported (and its functions not yet run). Node compiles its TypeScript
  // stripper (WebAssembly) on background threads at start; a Worker runs a plain JavaScript
  // bundle, so let that settle before timing.
  await new Promise((resolve) => setTimeout(resolve, 300));
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const t1 = performance.now();
  const tok = Tokenizer.fromCompiled(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const t2 = performance.now();
  const ids = tok.encode(START_PROMPT);
  const t3 = performance.now();
  gc?.();
  const heapAfterStart = process.memoryUsage().heapUsed;
  // Then a busy isolate: the whole corpus encoded and decoded (fills the decoded-piece strings),
  // the corpus itself released before measuring.
  let corpus: string[] | undefined = readCorpusTexts();
  for (const text of corpus) tok.decode(tok.encode(text));
  corpus = undefined;
  gc?.();
  const heapAfterCorpus = process.memoryUsage().heapUsed;
  console.log(
    JSON.stringify({
      loadMs: t2 - t1,
      firstEncodeMs: t3 - t2,
      tokens: ids.length,
      heapStartBytes: heapAfterStart - heapBefore,
      heapBusyBytes: heapAfterCorpus - heapBefore,
    }),
  );
}

function readCorpusTexts(): string[] {
  const file = path.resolve(REPO_ROOT, '../shared/fixtures/tokenizer/dev-corpus.jsonl');
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => (JSON.parse(l) as { text: string }).text);
}

async function wasmBaseline(modelPath: string): Promise<Encoder> {
  const spp = new sentencepieceJs.SentencePieceProcessor();
  await spp.load(modelPath);
  return { name: '@agnai/sentencepiece-js (WASM)', encode: (text) => spp.encodeIds(text) };
}

function timeCorpus(encoder: Encoder, texts: string[]): { seconds: number; tokens: number } {
  let tokens = 0;
  const t0 = performance.now();
  for (const text of texts) tokens += encoder.encode(text).length;
  return { seconds: (performance.now() - t0) / 1000, tokens };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** The longest text of at most `bytes` UTF-8 bytes made by repeating `unit`. */
function sized(unit: string, bytes: number): string {
  const utf8Length = (cp: number) => (cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
  let length = 0;
  let text = '';
  while (length < bytes) {
    let end = 0;
    for (const ch of unit) {
      const n = utf8Length(ch.codePointAt(0)!);
      if (length + n > bytes) break;
      length += n;
      end += ch.length;
    }
    if (end === 0) break;
    text += unit.slice(0, end);
  }
  return text;
}

function bestOf(times: number, f: () => void): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    f();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: 'string' }, 'start-child': { type: 'string' } },
  });
  if (values['start-child']) return startChild(values['start-child']);
  const rounds = Number(values.rounds ?? 7);

  const modelPath = findTokenizerModel();
  const compiledPath = await ensureCompiledTokenizer();
  const compiled = new Uint8Array(readFileSync(compiledPath));
  const texts = readCorpusTexts();
  const corpusBytes = texts.reduce((n, t) => n + Buffer.byteLength(t, 'utf8'), 0);
  const wasm = await wasmBaseline(modelPath);

  const tokenizer = Tokenizer.fromCompiled(compiled);
  const ours: Encoder = { name: 'TypeScript (this repository)', encode: (t) => tokenizer.encode(t) };

  // Warm up the JIT of both, then alternate rounds so that load on the machine hits both alike.
  timeCorpus(wasm, texts);
  timeCorpus(ours, texts);
  const results = new Map<string, number[]>([
    [wasm.name, []],
    [ours.name, []],
  ]);
  let tokens = 0;
  for (let r = 0; r < rounds; r++) {
    results.get(wasm.name)!.push(timeCorpus(wasm, texts).seconds);
    const run = timeCorpus(ours, texts);
    results.get(ours.name)!.push(run.seconds);
    tokens = run.tokens;
  }

  console.log(
    `corpus: ${texts.length} samples, ${fmt(corpusBytes)} bytes, ${fmt(tokens)} tokens; ${rounds} rounds\n`,
  );
  const wasmBest = Math.min(...results.get(wasm.name)!);
  const wasmMedian = median(results.get(wasm.name)!);
  console.log(
    `${'encoder'.padEnd(34)}${'best s'.padStart(8)}${'tokens/s'.padStart(12)}${'MB/s'.padStart(7)}${'median s'.padStart(10)}${'x WASM (best, median)'.padStart(24)}`,
  );
  for (const [name, secs] of results) {
    const best = Math.min(...secs);
    const med = median(secs);
    console.log(
      `${name.padEnd(34)}${fmt(best, 3).padStart(8)}${fmt(tokens / best).padStart(12)}${fmt(corpusBytes / 1e6 / best, 2).padStart(7)}${fmt(med, 3).padStart(10)}${`${fmt(wasmBest / best, 2)}, ${fmt(wasmMedian / med, 2)}`.padStart(24)}`,
    );
  }

  // Isolate start and heap, each in a fresh process.
  const starts: Record<string, number>[] = [];
  for (let i = 0; i < 9; i++) {
    const out = execFileSync(
      process.execPath,
      ['--expose-gc', path.join(REPO_ROOT, 'scripts/bench/tokenizer.ts'), '--start-child', compiledPath],
      { encoding: 'utf8' },
    );
    starts.push(JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>);
  }
  const med = (k: string) => median(starts.map((s) => s[k]!));
  const min = (k: string) => Math.min(...starts.map((s) => s[k]!));
  const both = (k: string) => `${fmt(med(k), 2)} ms (best ${fmt(min(k), 2)})`;
  const startTotal = starts.map((s) => s.loadMs! + s.firstEncodeMs!);
  console.log(`\nisolate start (fresh process each, median of ${starts.length}):`);
  console.log(`  load compiled form       ${both('loadMs')}`);
  console.log(`  encode first prompt      ${both('firstEncodeMs')}, ${starts[0]!.tokens} tokens`);
  console.log(
    `  load + first encode      ${fmt(median(startTotal), 2)} ms (best ${fmt(Math.min(...startTotal), 2)}; target <= 5 ms)`,
  );
  console.log(`compiled size              ${fmt(compiled.length)} bytes (target <= 1,500,000)`);
  console.log(
    `heap used after start      ${fmt(med('heapStartBytes') / 1e6, 2)} MB (compiled bytes excluded: they are the Data module)`,
  );
  console.log(
    `heap used, busy isolate    ${fmt(med('heapBusyBytes') / 1e6, 2)} MB (after encoding and decoding the whole corpus; target <= 20 MB)`,
  );

  // Linearity.
  const corpusSamples = texts.slice(0, 5768);
  const english = corpusSamples.filter((t) => /^[\x20-\x7e\n]+$/.test(t) && t.includes(' ')).join(' ');
  const japanese = corpusSamples
    .filter((t) => /[\u3040-\u30ff]/.test(t))
    .map((t) => t.replace(/\s+/g, ''))
    .join('');
  const kinds: [string, string][] = [
    ['spaced English', english.replace(/\n/g, ' ')],
    ['Japanese, no spaces', japanese],
    ['one character (a)', 'a'],
  ];
  console.log(
    '\nlinearity: encode time (best of 3) by input size; ms per MB stays flat when time grows linearly',
  );
  console.log(
    `${'input'.padEnd(22)}${'bytes'.padStart(10)}${'TS ms'.padStart(9)}${'TS ms/MB'.padStart(10)}${'WASM ms'.padStart(9)}${'WASM ms/MB'.padStart(12)}`,
  );
  for (const [label, unit] of kinds) {
    for (const size of [64, 128, 256, 512, 1024].map((k) => k * 1024)) {
      const text = sized(unit, size);
      const ts = bestOf(3, () => tokenizer.encode(text));
      const wa = bestOf(3, () => wasm.encode(text));
      const mb = size / 1e6;
      console.log(
        `${label.padEnd(22)}${fmt(size).padStart(10)}${fmt(ts, 1).padStart(9)}${fmt(ts / mb).padStart(10)}${fmt(wa, 1).padStart(9)}${fmt(wa / mb).padStart(12)}`,
      );
    }
  }
}

await main();
