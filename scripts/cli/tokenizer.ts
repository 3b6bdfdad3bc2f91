// Tokenizer commands (a stable contract: checks outside the test suite call them):
//   tokenize   --tokenizer PATH --jsonl FILE   one JSON array of ids per input line ({"text"})
//   detokenize --tokenizer PATH --jsonl FILE   one JSON string per input line ({"ids"})
//   tokenizer compile --model PATH --out PATH  writes the compiled form the edge bundles
// --tokenizer takes the .model or the compiled file (told apart by magic bytes); --jsonl - reads
// stdin. Only results go to stdout; on any bad line nothing is printed there, the error goes to
// stderr and the exit status is 1.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { compileTokenizer, Tokenizer } from '../../shared/src/tokenizer/index.ts';

const USAGE = `usage:
  npm run -s cli -- tokenize --tokenizer PATH --jsonl FILE      (lines {"text": ...} -> id arrays)
  npm run -s cli -- detokenize --tokenizer PATH --jsonl FILE    (lines {"ids": [...]} -> strings)
  npm run -s cli -- tokenizer compile --model PATH --out PATH
PATH for --tokenizer is a SentencePiece .model or a compiled tokenizer; FILE may be - for stdin.
`;

class UsageError extends Error {}

export async function run(args: string[]): Promise<number> {
  try {
    const [command, ...rest] = args;
    if (command === 'tokenize' || command === 'detokenize') return convertLines(command, rest);
    if (command === 'tokenizer') return await compileCommand(rest);
    throw new UsageError(`unknown command '${command}'`);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`error: ${message}\n${err instanceof UsageError ? `\n${USAGE}` : ''}`);
    return err instanceof UsageError ? 2 : 1;
  }
}

function options(args: string[], names: string[]): Record<string, string> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args,
      options: Object.fromEntries(names.map((n) => [n, { type: 'string' as const }])),
      allowPositionals: false,
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const values = parsed.values as Record<string, string | undefined>;
  for (const n of names) if (!values[n]) throw new UsageError(`missing --${n}`);
  return values as Record<string, string>;
}

function readInput(file: string, what: string): Buffer {
  try {
    return file === '-' ? readFileSync(0) : readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

function loadTokenizer(file: string): Tokenizer {
  const bytes = new Uint8Array(readInput(file, 'tokenizer'));
  try {
    return Tokenizer.load(bytes);
  } catch (err) {
    throw new Error(`cannot load tokenizer ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function convertLines(command: 'tokenize' | 'detokenize', args: string[]): number {
  const { tokenizer: tokenizerPath, jsonl } = options(args, ['tokenizer', 'jsonl']);
  const tokenizer = loadTokenizer(tokenizerPath!);
  const lines = readInput(jsonl!, 'input').toString('utf8').split('\n');
  const out: string[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return; // blank lines (such as the one after the final newline) are not records
    const record = parseRecord(line, i + 1);
    if (command === 'tokenize') out.push(JSON.stringify(tokenizer.encode(textField(record, i + 1))));
    else out.push(JSON.stringify(tokenizer.decode(idsField(record, i + 1))));
  });
  writeLines(out);
  return 0;
}

function parseRecord(line: string, lineNumber: number): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new Error(
      `line ${lineNumber}: not valid JSON (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`line ${lineNumber}: expected a JSON object`);
  }
  return value as Record<string, unknown>;
}

function textField(record: Record<string, unknown>, lineNumber: number): string {
  if (typeof record.text !== 'string') throw new Error(`line ${lineNumber}: "text" must be a string`);
  return record.text;
}

function idsField(record: Record<string, unknown>, lineNumber: number): number[] {
  const ids = record.ids;
  if (!Array.isArray(ids) || !ids.every((id) => Number.isSafeInteger(id) && id >= 0)) {
    throw new Error(`line ${lineNumber}: "ids" must be an array of non-negative integers`);
  }
  return ids as number[];
}

/** Writes in chunks so that one huge string is never built. */
function writeLines(lines: string[]): void {
  const CHUNK = 4096;
  for (let i = 0; i < lines.length; i += CHUNK) {
    process.stdout.write(`${lines.slice(i, i + CHUNK).join('\n')}\n`);
  }
}

async function compileCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'compile') throw new UsageError(`unknown tokenizer command '${sub ?? ''}'`);
  const { model, out } = options(rest, ['model', 'out']);
  const modelBytes = new Uint8Array(readInput(model!, 'model'));
  let compiled: Uint8Array;
  try {
    compiled = await compileTokenizer(modelBytes);
  } catch (err) {
    throw new Error(`cannot compile ${model}: ${err instanceof Error ? err.message : String(err)}`);
  }
  mkdirSync(path.dirname(path.resolve(out!)), { recursive: true });
  writeFileSync(out!, compiled);
  process.stderr.write(`compiled ${model} -> ${out} (${compiled.length} bytes)\n`);
  return 0;
}
