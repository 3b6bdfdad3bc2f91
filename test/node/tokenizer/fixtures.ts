// Tokenizer fixtures from ../shared (read by path, never copied): the nerdstash v1 model and the
// reference ids and texts recorded with sentencepiece 0.1.97.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { compileTokenizer, Tokenizer } from '../../../shared/src/tokenizer/index.ts';

export const FIXTURES = path.resolve(process.cwd(), '../shared/fixtures/tokenizer');
export const MODEL_PATH = path.join(FIXTURES, 'novelai.model');
export const fixturesPresent = existsSync(MODEL_PATH);

export interface CorpusRecord {
  id: string;
  kind: 'corpus' | 'adversarial';
  source: string;
  text: string;
  ids: number[];
  decoded: string;
  pieces?: string[];
}

export interface DecodeCase {
  ids: number[];
  note: string;
  decoded: string;
  pieces: string[];
}

function readJsonl<T>(name: string): T[] {
  const text = readFileSync(path.join(FIXTURES, name), 'utf8');
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as T);
}

export const readCorpus = () => readJsonl<CorpusRecord>('dev-corpus.jsonl');
export const readDecodeCases = () => readJsonl<DecodeCase>('dev-decode-cases.jsonl');
export const readModel = () => new Uint8Array(readFileSync(MODEL_PATH));

/** The tokenizer as the edge loads it: compiled here from the .model, then loaded. */
export async function loadCompiled(): Promise<Tokenizer> {
  return Tokenizer.fromCompiled(await compileTokenizer(readModel()));
}

/** The tokenizer loaded from the .model and from its compiled form. */
export async function loadBothForms(): Promise<{
  fromModel: Tokenizer;
  fromCompiled: Tokenizer;
  compiled: Uint8Array;
}> {
  const model = readModel();
  const compiled = await compileTokenizer(model);
  return {
    fromModel: Tokenizer.fromSentencePiece(model),
    fromCompiled: Tokenizer.fromCompiled(compiled),
    compiled,
  };
}

export function sameIds(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Asserts through `check` that no mismatch was collected, printing the first few when some were. */
export function reportMismatches(what: string, mismatches: unknown[]): { count: number; first: unknown[] } {
  if (mismatches.length > 0) {
    console.error(
      `${what}: ${mismatches.length} mismatches; first ones:\n${mismatches
        .slice(0, 10)
        .map((m) => JSON.stringify(m))
        .join('\n')}`,
    );
  }
  return { count: mismatches.length, first: mismatches.slice(0, 10) };
}
