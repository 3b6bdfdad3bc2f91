import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GenerationEngine } from '../../../gpu-function/src/engine/engine.ts';
import { ContextLengthError } from '../../../gpu-function/src/engine/request.ts';
import { ApiError } from '../../../shared/src/errors.ts';
import {
  collectIds,
  eosAlwaysModelDir,
  FIXTURES,
  type FixtureName,
  fixtureModelDir,
  type Golden,
  readGolden,
  removeDir,
} from './fixture-model.ts';

describe.skipIf(!existsSync(FIXTURES))('generation engine', () => {
  for (const fixture of ['tiny-seed1234', 'h128-seed4321'] as FixtureName[]) {
    describe(`${fixture} float32`, () => {
      let dir: string;
      let engine: GenerationEngine;
      let golden: Golden;
      beforeAll(async () => {
        dir = await fixtureModelDir(fixture, 'float32');
        golden = await readGolden(fixture);
        engine = await GenerationEngine.open(dir, { intraOpNumThreads: 1 });
      });
      afterAll(async () => {
        await engine?.close();
        await removeDir(dir);
      });

      it('greedy output equals the golden continuation for every chunking', async () => {
        const { prompt_ids: promptIds, new_tokens: expected } = golden.greedy;
        for (const maxChunk of [1, 3, 20, undefined]) {
          const stream = engine.generate({ promptIds, maxNewTokens: 20, temperature: 0 }, { maxChunk });
          expect(await collectIds(stream)).toEqual(expected);
          const r = await stream.result;
          expect(r).toMatchObject({ finishReason: 'length', promptTokens: 12, completionTokens: 20 });
          expect(r.chunkSizes.reduce((a, b) => a + b, 0)).toBe(20);
        }
      });

      it('sampling is reproducible per seed, whatever the chunking, and seeds differ', async () => {
        const base = {
          promptIds: golden.greedy.prompt_ids,
          maxNewTokens: 16,
          temperature: 1.3,
          topP: 0.95,
          topK: 200,
        };
        const a = await collectIds(engine.generate({ ...base, seed: 42 }, { maxChunk: 16 }));
        const b = await collectIds(engine.generate({ ...base, seed: 42 }, { maxChunk: 3 }));
        const c = await collectIds(engine.generate({ ...base, seed: 43 }));
        expect(a).toHaveLength(16);
        expect(b).toEqual(a);
        expect(c).not.toEqual(a);
        expect(a).not.toEqual(golden.greedy.new_tokens.slice(0, 16));
        // Without a seed a random one is drawn and reported; reusing it reproduces the output.
        const free = engine.generate(base);
        const freeIds = await collectIds(free);
        const { seed } = await free.result;
        expect(await collectIds(engine.generate({ ...base, seed }))).toEqual(freeIds);
      });

      it('a stop id ends generation: it is reported, not yielded', async () => {
        const expected = golden.greedy.new_tokens;
        const stop = expected[5] as number;
        const at = expected.indexOf(stop);
        const stream = engine.generate(
          { promptIds: golden.greedy.prompt_ids, maxNewTokens: 20, temperature: 0, stopIds: [stop] },
          { maxChunk: 4 },
        );
        expect(await collectIds(stream)).toEqual(expected.slice(0, at));
        expect(await stream.result).toMatchObject({
          finishReason: 'stop',
          stopTokenId: stop,
          completionTokens: at + 1,
        });
      });

      it('the strongest repetition penalty (10) keeps greedy decoding off every id already present', async () => {
        const promptIds = golden.greedy.prompt_ids;
        const ids = await collectIds(
          engine.generate({ promptIds, maxNewTokens: 20, temperature: 0, repetitionPenalty: 10 }),
        );
        expect(ids).toHaveLength(20);
        expect(new Set([...promptIds, ...ids]).size).toBe(new Set(promptIds).size + 20);
      });

      it('counts the bytes crossing the runtime boundary: chunking moves the cache less often', async () => {
        const req = { promptIds: golden.greedy.prompt_ids, maxNewTokens: 16, temperature: 0 };
        const before = engine.metrics();
        const perToken = await engine.generate(req, { maxChunk: 1 }).result;
        const chunked = await engine.generate(req, { maxChunk: 16 }).result;
        // A newcomer's first chunk is one step (its first token comes at once), then the rest.
        expect(chunked.chunkSizes).toEqual([1, 15]);
        expect(perToken.runs).toBe(16);
        expect(chunked.boundaryBytesPerToken).toBeGreaterThan(0);
        expect(chunked.boundaryBytesPerToken * 4).toBeLessThan(perToken.boundaryBytesPerToken);
        const after = engine.metrics();
        expect(after.generatedTokens - before.generatedTokens).toBe(32);
        expect(after.runs - before.runs).toBe(16 + 2 + 2); // + one prefill run each
        expect(after.boundaryBytesPerToken).toBeGreaterThan(0);
      });
    });
  }

  describe('requests and cancellation (tiny fixture)', () => {
    let dir: string;
    let engine: GenerationEngine;
    let golden: Golden;
    beforeAll(async () => {
      dir = await fixtureModelDir('tiny-seed1234', 'float32');
      golden = await readGolden('tiny-seed1234');
      engine = await GenerationEngine.open(dir, { intraOpNumThreads: 1 });
    });
    afterAll(async () => {
      await engine?.close();
      await removeDir(dir);
    });

    it('reports the execution provider it uses (CPU here, with the reason CUDA was not used)', () => {
      expect(['cpu', 'cuda']).toContain(engine.provider);
      if (engine.provider === 'cpu') expect(engine.info.fallbackReason).toMatch(/CUDA/);
      expect(engine.info.dtype).toBe('float32');
    });

    it('rejects prompt + max_new_tokens over 2048 with a typed error, before any work', () => {
      const promptIds = golden.greedy.prompt_ids;
      const tooMany = () => engine.generate({ promptIds, maxNewTokens: 2048 - promptIds.length + 1 });
      expect(tooMany).toThrow(ContextLengthError);
      try {
        tooMany();
      } catch (err) {
        expect(err).toBeInstanceOf(ApiError);
        expect((err as ApiError).status).toBe(400);
        expect((err as ApiError).code).toBe('context_length_exceeded');
      }
      const ac = new AbortController();
      ac.abort();
      const exact = engine.generate(
        { promptIds, maxNewTokens: 2048 - promptIds.length },
        { signal: ac.signal },
      );
      return expect(exact.result).rejects.toThrow(/abort/i);
    });

    it('rejects invalid parameters with a 400 naming the parameter', () => {
      const promptIds = golden.greedy.prompt_ids;
      const bad: [Record<string, unknown>, string][] = [
        [{ temperature: -1 }, 'temperature'],
        [{ topP: 0 }, 'top_p'],
        [{ topK: 1.5 }, 'top_k'],
        [{ repetitionPenalty: 0 }, 'repetition_penalty'],
        [{ seed: 0.5 }, 'seed'],
        [{ stopIds: [70000] }, 'stop_token_ids'],
        [{ promptIds: [] }, 'prompt'],
        [{ promptIds: [1, -2] }, 'prompt'],
        [{ maxNewTokens: 0 }, 'max_tokens'],
      ];
      for (const [patch, param] of bad) {
        const call = () => engine.generate({ promptIds, maxNewTokens: 4, ...patch });
        expect(call).toThrow(ApiError);
        try {
          call();
        } catch (err) {
          expect((err as ApiError).param).toBe(param);
        }
      }
    });

    it('an abort stops generation within one chunk and the engine keeps serving', async () => {
      const ac = new AbortController();
      const promptIds = golden.greedy.prompt_ids;
      const stream = engine.generate(
        { promptIds, maxNewTokens: 2000, temperature: 0.9, seed: 1 },
        { signal: ac.signal, maxChunk: 4 },
      );
      const received: number[] = [];
      const consume = (async () => {
        for await (const { ids } of stream) {
          received.push(...ids);
          ac.abort();
        }
      })();
      await expect(consume).rejects.toMatchObject({ name: 'AbortError' });
      await expect(stream.result).rejects.toMatchObject({ name: 'AbortError' });
      expect(received.length).toBeGreaterThanOrEqual(1);
      expect(received.length).toBeLessThanOrEqual(5); // the chunk in flight may still arrive
      const ids = await collectIds(engine.generate({ promptIds, maxNewTokens: 20, temperature: 0 }));
      expect(ids).toEqual(golden.greedy.new_tokens);
    });

    it('leaving the loop early cancels the request', async () => {
      const promptIds = golden.greedy.prompt_ids;
      const stream = engine.generate({ promptIds, maxNewTokens: 2000, temperature: 0 }, { maxChunk: 2 });
      for await (const _ of stream) break;
      await expect(stream.result).rejects.toMatchObject({ name: 'AbortError' });
      const r = await engine.generate({ promptIds, maxNewTokens: 3, temperature: 0 }).result;
      expect(r.completionTokens).toBe(3);
    });

    it('concurrent requests share the batch, each with its own results', async () => {
      const promptIds = golden.greedy.prompt_ids;
      const [a, b] = [
        engine.generate({ promptIds, maxNewTokens: 5, temperature: 0 }),
        engine.generate({ promptIds, maxNewTokens: 7, temperature: 0 }),
      ];
      const [ia, ib] = await Promise.all([collectIds(a), collectIds(b)]);
      expect(ia).toEqual(golden.greedy.new_tokens.slice(0, 5));
      expect(ib).toEqual(golden.greedy.new_tokens.slice(0, 7));
      expect((await b.result).timings.queueMs).toBeGreaterThan(0);
    });
  });

  it('end-of-text stops generation with finishReason eos (weights patched to always predict id 3)', async () => {
    const dir = await eosAlwaysModelDir();
    const engine = await GenerationEngine.open(dir, { intraOpNumThreads: 1 });
    try {
      const stream = engine.generate(
        { promptIds: [5, 6, 7], maxNewTokens: 10, temperature: 0.7, seed: 3 },
        { maxChunk: 8 },
      );
      expect(await collectIds(stream)).toEqual([]);
      expect(await stream.result).toMatchObject({
        finishReason: 'eos',
        stopTokenId: 3,
        completionTokens: 1,
        runs: 1,
      });
    } finally {
      await engine.close();
      await removeDir(dir);
    }
  });

  it('float16 model: the engine serves it; chunked greedy output equals a single chunk', async () => {
    const dir = await fixtureModelDir('h128-seed4321', 'float16');
    const engine = await GenerationEngine.open(dir, { intraOpNumThreads: 1 });
    try {
      const golden = await readGolden('h128-seed4321');
      expect(engine.info.dtype).toBe('float16');
      const req = { promptIds: golden.greedy.prompt_ids, maxNewTokens: 12, temperature: 0 };
      const chunked = await collectIds(engine.generate(req, { maxChunk: 5 }));
      const single = await collectIds(engine.generate(req, { maxChunk: 12 }));
      expect(chunked).toHaveLength(12);
      expect(chunked).toEqual(single);
    } finally {
      await engine.close();
      await removeDir(dir);
    }
  });
});
