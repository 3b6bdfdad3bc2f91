// Where the tokenizer model is found and where its compiled form goes. The edge bundles
// .cache/tokenizer/nerdstash-v1.bin as a Data module; ensureCompiledTokenizer() keeps that file
// in step with the model (the model's SHA-256 is recorded in the compiled header).

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileTokenizer, isCompiledFrom } from '../../shared/src/tokenizer/index.ts';

export const REPO_ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const DEFAULT_TOKENIZER_MODEL = path.resolve(REPO_ROOT, '../shared/fixtures/tokenizer/novelai.model');
/** Where `npm run -s cli -- fetch tokenizer` saves the model. */
export const FETCHED_TOKENIZER_MODEL = path.join(REPO_ROOT, '.cache/tokenizer/novelai.model');
export const COMPILED_TOKENIZER_PATH = path.join(REPO_ROOT, '.cache/tokenizer/nerdstash-v1.bin');

/**
 * The .model file: $TOKENIZER_MODEL when set (and then only it), else the shared fixture next to
 * the repository, else the copy `fetch tokenizer` downloads.
 */
export function findTokenizerModel(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TOKENIZER_MODEL) {
    const fromEnv = path.resolve(env.TOKENIZER_MODEL);
    if (existsSync(fromEnv)) return fromEnv;
    throw new Error(
      `tokenizer model not found: TOKENIZER_MODEL points to ${fromEnv}, which does not exist ` +
        `(unset it to use ${DEFAULT_TOKENIZER_MODEL})`,
    );
  }
  for (const candidate of [DEFAULT_TOKENIZER_MODEL, FETCHED_TOKENIZER_MODEL]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(
    `tokenizer model not found: TOKENIZER_MODEL is not set and neither ${DEFAULT_TOKENIZER_MODEL} ` +
      `nor ${FETCHED_TOKENIZER_MODEL} exists. Set TOKENIZER_MODEL to the nerdstash v1 .model file, ` +
      'or download it with `npm run -s cli -- fetch tokenizer`.',
  );
}

/**
 * Writes the compiled tokenizer if it is missing, stale (made from another model) or of an older
 * format, and returns its path. The write is atomic, so concurrent builds never see half a file.
 */
export async function ensureCompiledTokenizer(
  options: { model?: string; out?: string } = {},
): Promise<string> {
  const modelPath = options.model ?? findTokenizerModel();
  const out = options.out ?? COMPILED_TOKENIZER_PATH;
  const model = new Uint8Array(readFileSync(modelPath));
  const digest = new Uint8Array(createHash('sha256').update(model).digest());
  if (existsSync(out) && isCompiledFrom(new Uint8Array(readFileSync(out)), digest)) return out;
  const compiled = await compileTokenizer(model);
  mkdirSync(path.dirname(out), { recursive: true });
  const temporary = `${out}.${process.pid}.tmp`;
  writeFileSync(temporary, compiled);
  renameSync(temporary, out);
  return out;
}
