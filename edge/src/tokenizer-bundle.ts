// Loaded on first use by ./tokenizer.ts. The compiled table is a Data module (an ArrayBuffer in
// the bundle; see [[rules]] in wrangler.toml), written by ensureCompiledTokenizer().
import compiled from '../../.cache/tokenizer/nerdstash-v1.bin';
import { Tokenizer } from '../../shared/src/tokenizer/index.ts';
import type { EdgeTokenizer } from './tokenizer.ts';

export function bundledTokenizer(): EdgeTokenizer {
  return Tokenizer.fromCompiled(new Uint8Array(compiled));
}
