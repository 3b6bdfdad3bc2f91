// The proof's parallel random checkpoint writer makes the very file the project's generator makes.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRandomCheckpoint } from '../../../gpu-function/src/checkpoint/random.ts';
import { writeRandomCheckpointParallel } from '../../../scripts/gpu/random-model.ts';

const CONFIG = { hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 1000 };

describe('parallel random checkpoint', () => {
  let dir: string;
  beforeAll(async () => {
    const root = path.resolve('.cache/gpu-tests');
    await mkdir(root, { recursive: true });
    dir = await mkdtemp(path.join(root, 'random-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it.each(['F16', 'F32'] as const)('%s: byte for byte what writeRandomCheckpoint writes', async (dtype) => {
    const one = path.join(dir, `one-${dtype}`);
    const many = path.join(dir, `many-${dtype}`);
    await writeRandomCheckpoint({ dir: one, config: CONFIG, seed: 5, dtype });
    const r = await writeRandomCheckpointParallel({ dir: many, config: CONFIG, seed: 5, dtype, threads: 3 });
    for (const f of ['config.json', 'model.safetensors']) {
      expect((await readFile(path.join(many, f))).equals(await readFile(path.join(one, f))), f).toBe(true);
    }
    expect(r.config.hiddenSize).toBe(64);
    expect(r.parameters).toBe(
      1000 * 64 * 2 + 2 * (192 * 64 + 64 * 64 + 2 * 64 + 512 * 64 + 64 * 256) + 2 * 64,
    );
  });
});
