// Continuous batching: rows of different lengths, parameters and seeds decode together, join
// between chunks and leave at once, and no row's output depends on its neighbours.

import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GenerateOptions,
  GenerationEngine,
  type GenerationStream,
} from '../../../gpu-function/src/engine/engine.ts';
import type { RunReport } from '../../../gpu-function/src/engine/protocol.ts';
import type { GenerationRequest } from '../../../gpu-function/src/engine/request.ts';
import {
  FIXTURES,
  type FixtureName,
  fixtureModelDir,
  type Golden,
  readGolden,
  removeDir,
} from './fixture-model.ts';

/** Ids per sample index. */
async function collect(stream: GenerationStream): Promise<number[][]> {
  const out: number[][] = [];
  for await (const { index, ids } of stream) {
    out[index] = [...(out[index] ?? []), ...ids];
  }
  return out;
}

describe.skipIf(!existsSync(FIXTURES))('continuous batching', () => {
  for (const fixture of ['tiny-seed1234', 'h128-seed4321'] as FixtureName[]) {
    describe(fixture, () => {
      let dir: string;
      let engine: GenerationEngine;
      let golden: Golden;
      const runs: RunReport[] = [];
      beforeAll(async () => {
        dir = await fixtureModelDir(fixture, 'float32');
        golden = await readGolden(fixture);
        engine = await GenerationEngine.open(dir, { intraOpNumThreads: 1 });
        engine.onRun((r) => runs.push(r));
      });
      afterAll(async () => {
        await engine?.close();
        await removeDir(dir);
      });

      const greedy = (): GenerationRequest => ({
        promptIds: golden.greedy.prompt_ids,
        maxNewTokens: golden.greedy.new_tokens.length,
        temperature: 0,
      });
      const sampled: GenerationRequest[] = [
        { promptIds: [5, 9, 200, 7], maxNewTokens: 9, temperature: 1.1, topK: 50, seed: 11 },
        { promptIds: [42], maxNewTokens: 13, temperature: 0.8, topP: 0.9, seed: 12, repetitionPenalty: 1.3 },
        { promptIds: [7, 7, 7, 7, 7, 7, 7, 7, 7], maxNewTokens: 6, temperature: 1, seed: 13, n: 3 },
      ];
      const alone = async (req: GenerationRequest, opts?: GenerateOptions) =>
        collect(engine.generate(req, opts));

      it('a mixed batch: greedy stays exact, every sampled row and sample equals its run alone', async () => {
        const solo: number[][][] = [];
        for (const r of sampled) solo.push(await alone(r));
        runs.length = 0;
        const together = await Promise.all([greedy(), ...sampled].map((r) => alone(r)));
        expect(together[0]).toEqual([golden.greedy.new_tokens]);
        expect(together.slice(1)).toEqual(solo);
        // They really ran together (n = 3 counts 3 rows). Arrivals are not simultaneous, so a
        // short request may finish before the last one joins: at least most of them at once.
        expect(
          Math.max(...runs.filter((r) => r.kind === 'decode').map((r) => r.batch)),
        ).toBeGreaterThanOrEqual(4);
        // n samples of one prompt differ from each other.
        expect(new Set(together[3]?.map((ids) => ids.join())).size).toBe(3);
      });

      it('a row that joins mid-run and a row cancelled mid-batch leave the others unaffected', async () => {
        const cancelMe = new AbortController();
        runs.length = 0;
        const first = engine.generate(greedy(), { maxChunk: 2 });
        const doomed = engine.generate(
          { promptIds: [9, 8, 7], maxNewTokens: 200, temperature: 1, seed: 5 },
          { signal: cancelMe.signal, maxChunk: 2 },
        );
        const firstIds = collect(first);
        // Join once the first two have produced tokens; cancel the doomed one soon after.
        let seen = 0;
        for await (const _ of doomed) {
          if (++seen === 2) break;
        }
        const late = sampled[1] as GenerationRequest;
        const lateIds = alone(late, { maxChunk: 2 });
        await expect(doomed.result).rejects.toMatchObject({ name: 'AbortError' });
        expect(await firstIds).toEqual([golden.greedy.new_tokens]);
        const solo = await alone(late);
        expect(await lateIds).toEqual(solo);
        const batchSizes = runs.filter((r) => r.kind === 'decode').map((r) => r.batch);
        expect(Math.max(...batchSizes)).toBeGreaterThanOrEqual(2);
      });
    });
  }
});
