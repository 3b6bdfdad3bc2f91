import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ModelConfig, parseModelConfig } from '../../../gpu-function/src/model/config.ts';
import { cpuSessionOptions, openForwardSession } from '../../../gpu-function/src/model/forward-session.ts';
import { GEN, presentKeyName } from '../../../gpu-function/src/model/generation-io.ts';
import {
  FIXTURES,
  type FixtureName,
  fixtureModelDir,
  type Golden,
  readGolden,
  removeDir,
} from './fixture-model.ts';
import { openGraph, runGraph } from './graph-runner.ts';

const column = (tokens: number[][], b: number) => tokens.map((row) => row[b] as number);

/** Greedy decoding with forward.onnx, one run per token: the reference the Loop must equal. */
async function stepwiseGreedy(dir: string, prompt: number[], n: number): Promise<number[]> {
  const fwd = await openForwardSession(dir, cpuSessionOptions(1));
  const V = fwd.config.vocabSize;
  const out: number[] = [];
  let r = await fwd.run({ inputIds: [prompt] });
  for (let i = 0; i < n; i++) {
    const last = r.logits.subarray(r.logits.length - V);
    let best = 0;
    for (let v = 1; v < V; v++) if ((last[v] as number) > (last[best] as number)) best = v;
    out.push(best);
    if (i + 1 < n) {
      r = await fwd.run({ inputIds: [[best]], past: r.present, positionIds: [[prompt.length + i]] });
    }
  }
  await fwd.release();
  return out;
}

describe.skipIf(!existsSync(FIXTURES))('generation graph (ONNX Loop with in-graph sampling)', () => {
  for (const fixture of ['tiny-seed1234', 'h128-seed4321'] as FixtureName[]) {
    describe(fixture, () => {
      let dir: string;
      let golden: Golden;
      let config: ModelConfig;
      let session: ort.InferenceSession;
      beforeAll(async () => {
        dir = await fixtureModelDir(fixture, 'float32');
        golden = await readGolden(fixture);
        config = parseModelConfig(JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')));
        session = await openGraph(dir);
      });
      afterAll(async () => {
        await session?.release();
        await removeDir(dir);
      });

      it('decodes the golden greedy continuation in one run, returning only tokens and the cache', async () => {
        const { prompt_ids: prompt, new_tokens: expected } = golden.greedy;
        const { tokens, out } = await runGraph(session, config, 'float32', { prompts: [prompt], steps: 20 });
        expect(column(tokens, 0)).toEqual(expected);
        expect(Object.keys(out).sort()).toEqual(session.outputNames.slice().sort());
        expect(session.outputNames.filter((n) => !n.startsWith('present.')).sort()).toEqual(
          [
            GEN.tokens,
            GEN.tokenLogprobs,
            GEN.topLogprobs,
            GEN.topIds,
            GEN.promptLogprobs,
            GEN.promptTopLogprobs,
            GEN.promptTopIds,
          ].sort(),
        );
        // The cache holds the prompt and every token but the last (not yet fed back).
        expect((out[presentKeyName(0)] as ort.Tensor).dims).toEqual([
          1,
          config.numHeads,
          prompt.length + 19,
          config.headSize,
        ]);
      });

      it('runs a batch: each row decodes as it would alone, and a finished row emits -1', async () => {
        const { prompt_ids: prompt, new_tokens: expected } = golden.greedy;
        const other = prompt.map((id) => (id * 7 + 1) % config.vocabSize);
        const alone = await runGraph(session, config, 'float32', { prompts: [other], steps: 8 });
        const both = await runGraph(session, config, 'float32', {
          prompts: [prompt, other, prompt],
          steps: 8,
          done: [false, false, true],
        });
        expect(column(both.tokens, 0)).toEqual(expected.slice(0, 8));
        expect(column(both.tokens, 1)).toEqual(column(alone.tokens, 0));
        expect(column(both.tokens, 2)).toEqual(new Array(8).fill(-1));
      });

      it('stops the Loop early once every row hit a stop id, emitting the stop id', async () => {
        const { prompt_ids: prompt, new_tokens: expected } = golden.greedy;
        const stop = expected[5] as number;
        const at = expected.indexOf(stop);
        const { tokens } = await runGraph(session, config, 'float32', {
          prompts: [prompt],
          steps: 20,
          stops: [[stop]],
        });
        expect(column(tokens, 0)).toEqual(expected.slice(0, at + 1));
      });

      it('equals step-by-step greedy decoding with forward.onnx', async () => {
        const prompt = golden.greedy.prompt_ids.slice(0, 5);
        const { tokens } = await runGraph(session, config, 'float32', { prompts: [prompt], steps: 12 });
        expect(column(tokens, 0)).toEqual(await stepwiseGreedy(dir, prompt, 12));
      });
    });
  }

  it('float16 graph equals step-by-step float16 greedy decoding (h128 fixture, fused kernels)', async () => {
    const dir = await fixtureModelDir('h128-seed4321', 'float16');
    try {
      const golden = await readGolden('h128-seed4321');
      const config = parseModelConfig(golden.config);
      const session = await openGraph(dir);
      const prompt = golden.greedy.prompt_ids;
      const { tokens, out } = await runGraph(session, config, 'float16', { prompts: [prompt], steps: 10 });
      await session.release();
      expect((out[presentKeyName(0)] as ort.Tensor).type).toBe('float16');
      expect(column(tokens, 0)).toEqual(await stepwiseGreedy(dir, prompt, 10));
    } finally {
      await removeDir(dir);
    }
  });
});
