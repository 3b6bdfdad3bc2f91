// The compiled form: size, source digest, loading from any buffer, refusal of damaged files,
// and the build helper that keeps .cache/tokenizer/nerdstash-v1.bin in step with the model.

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureCompiledTokenizer, findTokenizerModel } from '../../../scripts/lib/tokenizer-asset.ts';
import {
  compiledSourceDigest,
  isCompiled,
  isCompiledFrom,
  Tokenizer,
  TokenizerError,
} from '../../../shared/src/tokenizer/index.ts';
import { fixturesPresent, loadBothForms, MODEL_PATH, readCorpus, readModel } from './fixtures.ts';

const SAMPLE = 'The quick brown fox 吾輩は猫である 𠀋 <|endoftext|>   ***\n\t';

describe.skipIf(!fixturesPresent)('compiled tokenizer', () => {
  let compiled: Uint8Array;
  let fromModel: Tokenizer;
  let modelSha256: Uint8Array;
  let dir: string;

  beforeAll(async () => {
    ({ compiled, fromModel } = await loadBothForms());
    modelSha256 = new Uint8Array(createHash('sha256').update(readModel()).digest());
    dir = mkdtempSync(path.join(tmpdir(), 'tokenizer-compiled-'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('is at most 1.5 MB and records the SHA-256 of its source model', () => {
    expect(compiled.length).toBeLessThanOrEqual(1_500_000);
    expect(isCompiled(compiled)).toBe(true);
    expect(isCompiled(readModel())).toBe(false);
    expect(compiledSourceDigest(compiled)).toEqual(modelSha256);
    expect(isCompiledFrom(compiled, modelSha256)).toBe(true);
    expect(isCompiledFrom(compiled, new Uint8Array(32))).toBe(false);
    expect(Tokenizer.fromCompiled(compiled).sourceDigest).toEqual(modelSha256);
  });

  it('exposes the same vocabulary facts as the .model', () => {
    const tok = Tokenizer.fromCompiled(compiled);
    for (const t of [tok, fromModel]) {
      expect([t.pieceCount, t.vocabSize, t.padId, t.unkId, t.bosId, t.eosId]).toEqual([
        65535, 65535, 0, 1, 2, 3,
      ]);
    }
    for (let id = 0; id < 65535; id += 97) expect(tok.idToPiece(id)).toBe(fromModel.idToPiece(id));
  });

  it('loads from an ArrayBuffer, an unaligned view and Tokenizer.load, with identical results', () => {
    const unaligned = new Uint8Array(compiled.length + 1).subarray(1);
    unaligned.set(compiled);
    const copy = compiled.slice();
    const forms = [
      Tokenizer.fromCompiled(copy.buffer),
      Tokenizer.fromCompiled(unaligned),
      Tokenizer.load(compiled),
      Tokenizer.load(readModel()),
    ];
    const texts = readCorpus()
      .filter((_, i) => i % 50 === 0)
      .map((r) => r.text);
    for (const tok of forms) {
      for (const text of [SAMPLE, ...texts]) {
        const ids = tok.encode(text);
        expect(ids).toEqual(fromModel.encode(text));
        expect(tok.decode(ids)).toBe(fromModel.decode(ids));
      }
    }
  });

  it('refuses files that are not compiled tokenizers, or are damaged or of another format version', () => {
    expect(() => Tokenizer.fromCompiled(readModel())).toThrow(/bad magic/);
    expect(() => Tokenizer.fromCompiled(compiled.subarray(0, 40))).toThrow(TokenizerError);
    expect(() => Tokenizer.fromCompiled(compiled.subarray(0, compiled.length - 1000))).toThrow(
      /out of bounds/,
    );
    const otherVersion = compiled.slice();
    otherVersion[8] = 99;
    expect(() => Tokenizer.fromCompiled(otherVersion)).toThrow(/compile it again/);
    expect(compiledSourceDigest(otherVersion)).toBeUndefined();
    const noEmptySlot = compiled.slice();
    const view = new DataView(noEmptySlot.buffer);
    const [keysAt, keysLength] = [view.getUint32(76 + 4 * 8, true), view.getUint32(76 + 4 * 8 + 4, true)];
    noEmptySlot.fill(0, keysAt, keysAt + keysLength);
    expect(() => Tokenizer.fromCompiled(noEmptySlot).encode('ab')).toThrow(/no empty slot/);
  });

  it('refuses a model it cannot reproduce with a clear error', () => {
    expect(() => Tokenizer.fromSentencePiece(new Uint8Array([0x0a, 0x05, 0x01]))).toThrow(
      /not a SentencePiece model/,
    );
    expect(() => Tokenizer.fromSentencePiece(new Uint8Array(0))).toThrow(/unsupported SentencePiece model/);
  });

  it('ensureCompiledTokenizer writes the file once and rewrites it when stale', async () => {
    const out = path.join(dir, 'nested', 'nerdstash-v1.bin');
    expect(await ensureCompiledTokenizer({ model: MODEL_PATH, out })).toBe(out);
    expect(new Uint8Array(readFileSync(out))).toEqual(compiled);
    const firstWrite = statSync(out).mtimeMs;
    await new Promise((resolve) => setTimeout(resolve, 20));
    await ensureCompiledTokenizer({ model: MODEL_PATH, out });
    expect(statSync(out).mtimeMs).toBe(firstWrite);
    // A file made from another model (here: its digest altered) is replaced.
    const stale = compiled.slice();
    stale[44] = stale[44]! ^ 0xff;
    writeFileSync(out, stale);
    await ensureCompiledTokenizer({ model: MODEL_PATH, out });
    expect(isCompiledFrom(new Uint8Array(readFileSync(out)), modelSha256)).toBe(true);
  });

  it('findTokenizerModel honours TOKENIZER_MODEL and names every place it looked', () => {
    expect(findTokenizerModel({ TOKENIZER_MODEL: MODEL_PATH })).toBe(MODEL_PATH);
    expect(findTokenizerModel({})).toBe(path.resolve(MODEL_PATH));
    const missing = path.join(dir, 'missing.model');
    expect(() => findTokenizerModel({ TOKENIZER_MODEL: missing })).toThrow(missing);
    expect(() => findTokenizerModel({ TOKENIZER_MODEL: missing })).toThrow(
      'shared/fixtures/tokenizer/novelai.model',
    );
  });
});
