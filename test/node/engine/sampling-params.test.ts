// The sampling and stopping parameters of the contract through the engine, each against a
// host-side computation on the forward pass's full logits: logit_bias, presence and frequency
// penalties (generated ids only), min-p, min_tokens and ignore_eos.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GenerationEngine } from '../../../gpu-function/src/engine/engine.ts';
import { openForwardSession } from '../../../gpu-function/src/model/forward-session.ts';
import {
  collectIds,
  eosAlwaysModelDir,
  FIXTURES,
  fixtureModelDir,
  type Golden,
  readGolden,
  removeDir,
} from './fixture-model.ts';

const argmax = (row: Float32Array | number[]) => {
  let best = 0;
  for (let i = 1; i < row.length; i++) if ((row[i] as number) > (row[best] as number)) best = i;
  return best;
};

describe.skipIf(!existsSync(FIXTURES))('sampling and stopping parameters', () => {
  let dir: string;
  let engine: GenerationEngine;
  let golden: Golden;
  let logitsAfter: (ids: number[]) => Promise<Float32Array>;
  let release: () => Promise<void>;
  beforeAll(async () => {
    dir = await fixtureModelDir('h128-seed4321', 'float32');
    golden = await readGolden('h128-seed4321');
    engine = await GenerationEngine.open(dir, { intraOpNumThreads: 1 });
    const forward = await openForwardSession(dir);
    const V = forward.config.vocabSize;
    // The logits predicting the token after `ids`.
    logitsAfter = async (ids) => {
      const { logits } = await forward.run({ inputIds: [ids] });
      return logits.slice((ids.length - 1) * V, ids.length * V);
    };
    release = () => forward.release();
  });
  afterAll(async () => {
    await release?.();
    await engine?.close();
    await removeDir(dir);
  });

  it('logit_bias: +100 forces an id, -100 bans one (greedy)', async () => {
    const promptIds = golden.greedy.prompt_ids;
    const forced = await collectIds(
      engine.generate({ promptIds, maxNewTokens: 5, temperature: 0, logitBias: [[777, 100]] }),
    );
    expect(forced).toEqual([777, 777, 777, 777, 777]);
    const first = golden.greedy.new_tokens[0] as number;
    const [banned] = await collectIds(
      engine.generate({ promptIds, maxNewTokens: 1, temperature: 0, logitBias: [[first, -100]] }),
    );
    const logits = await logitsAfter(promptIds);
    logits[first] = Number.NEGATIVE_INFINITY;
    expect(banned).toBe(argmax(logits));
  });

  it('presence and frequency penalties follow OpenAI: from the counts of generated ids only', async () => {
    const promptIds = golden.greedy.prompt_ids;
    const presence = 1.5;
    const frequency = 0.75;
    const ids = await collectIds(
      engine.generate({
        promptIds,
        maxNewTokens: 10,
        temperature: 0,
        presencePenalty: presence,
        frequencyPenalty: frequency,
      }),
    );
    const counts = new Map<number, number>();
    for (const [t, id] of ids.entries()) {
      const logits = Array.from(await logitsAfter([...promptIds, ...ids.slice(0, t)]));
      for (const [seen, n] of counts) logits[seen] = (logits[seen] as number) - presence - frequency * n;
      expect(id, `step ${t}`).toBe(argmax(logits));
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    // The penalties changed the greedy continuation (else this test proves nothing).
    expect(ids).not.toEqual(golden.greedy.new_tokens.slice(0, 10));
  });

  it('min-p keeps only ids at least min_p times as likely as the top one', async () => {
    const promptIds = golden.greedy.prompt_ids;
    const minP = 0.3;
    const ids = await collectIds(
      engine.generate({ promptIds, maxNewTokens: 12, temperature: 1, minP, seed: 5 }),
    );
    for (const [t, id] of ids.entries()) {
      const logits = await logitsAfter([...promptIds, ...ids.slice(0, t)]);
      const top = logits[argmax(logits)] as number;
      expect((logits[id] as number) - top).toBeGreaterThanOrEqual(Math.log(minP) - 1e-4);
    }
  });

  it('min_tokens holds end-of-text back; ignore_eos generates past it (weights that always predict it)', async () => {
    const eosDir = await eosAlwaysModelDir();
    const eosEngine = await GenerationEngine.open(eosDir, { intraOpNumThreads: 1 });
    try {
      const held = eosEngine.generate({
        promptIds: [5, 6, 7],
        maxNewTokens: 10,
        temperature: 0,
        minTokens: 4,
      });
      expect(await collectIds(held)).toHaveLength(4);
      expect(await held.result).toMatchObject({ finishReason: 'eos', completionTokens: 5, stopTokenId: 3 });
      const past = eosEngine.generate({
        promptIds: [5, 6, 7],
        maxNewTokens: 6,
        temperature: 0,
        ignoreEos: true,
      });
      expect(await collectIds(past)).toEqual([3, 3, 3, 3, 3, 3]);
      expect(await past.result).toMatchObject({ finishReason: 'length', completionTokens: 6 });
    } finally {
      await eosEngine.close();
      await removeDir(eosDir);
    }
  });

  it('refuses values outside the contract, naming the parameter', () => {
    const promptIds = [5, 6];
    const bad: [Record<string, unknown>, string][] = [
      [{ minP: 1.5 }, 'min_p'],
      [{ presencePenalty: 3 }, 'presence_penalty'],
      [{ logitBias: [[70000, 1]] }, 'logit_bias'],
      [{ logitBias: [[5, 101]] }, 'logit_bias'],
      [{ minTokens: 5 }, 'min_tokens'],
    ];
    for (const [patch, param] of bad) {
      expect(() => engine.generate({ promptIds, maxNewTokens: 4, ...patch }), param).toThrow(
        expect.objectContaining({ param }),
      );
    }
  });
});
