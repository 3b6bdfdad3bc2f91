// The batching service through its real HTTP API: several prompts and n samples in one request
// (choices in OpenAI's order, the same tokens however the request is split), and turns between
// keys (a flood from one key does not hold back another key's first token).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateFrame } from '../../../shared/src/protocol/generate.ts';
import {
  convertTinyModel,
  goldenGreedy,
  HAVE_FIXTURES,
  removeScratch,
  scratchDir,
  storageEnv,
  uploadTo,
} from './helpers/model.ts';
import { LocalS3 } from './helpers/s3rver.ts';
import { doneFrame, ServiceProcess } from './helpers/service.ts';

/** Token ids per choice index. */
function byChoice(frames: GenerateFrame[]): number[][] {
  const out: number[][] = [];
  for (const f of frames) {
    if (f.type === 'tokens') out[f.index ?? 0] = [...(out[f.index ?? 0] ?? []), ...f.ids];
  }
  return out;
}

describe.skipIf(!HAVE_FIXTURES)('GPU function batching', () => {
  let s3: LocalS3;
  let dir: string;
  const running: ServiceProcess[] = [];

  beforeAll(async () => {
    s3 = await LocalS3.create();
    dir = await scratchDir('batching');
    await uploadTo(s3, await convertTinyModel(dir), 'tiny/v1');
  });

  afterAll(async () => {
    await Promise.all(running.map((s) => s.stop()));
    await s3?.dispose();
    await removeScratch(dir);
  });

  async function start(extra: Record<string, string>): Promise<ServiceProcess> {
    const svc = await ServiceProcess.start({
      ...storageEnv(s3.endpoint, s3.bucket, 'tiny/v1', join(dir, 'cache')),
      PRELOAD: '1',
      ...extra,
    });
    running.push(svc);
    await svc.waitForLog('model.ready');
    return svc;
  }

  it('several prompts x n samples: choices in prompt-major order, usage summed, same tokens however split', async () => {
    const golden = await goldenGreedy();
    const whole = await start({ MAX_BATCH: '8', MAX_ROWS_PER_KEY: '8' });
    const greedy = await whole.generate({
      prompts: [golden.prompt_ids, [5, 6]],
      n: 2,
      max_new_tokens: 20,
      temperature: 0,
    });
    const ids = byChoice(greedy.frames);
    expect(ids[0]).toEqual(golden.new_tokens);
    expect(ids[1]).toEqual(golden.new_tokens);
    expect(ids[2]).toEqual(ids[3]);
    expect(ids[2]).not.toEqual(golden.new_tokens);
    const done = doneFrame(greedy.frames);
    expect(done).toMatchObject({ prompt_tokens: golden.prompt_ids.length + 2, completion_tokens: 80 });
    expect(done.choices?.map((c) => c.index)).toEqual([0, 1, 2, 3]);

    const sampled = { prompts: [[7, 8, 9]], n: 3, max_new_tokens: 12, temperature: 1, seed: 99, key_id: 'k' };
    const together = byChoice((await whole.generate(sampled)).frames);
    expect(new Set(together.map((c) => c.join())).size).toBe(3);
    // One row per part: three prefills, three units, the same samples.
    const split = await start({ MAX_BATCH: '2', MAX_ROWS_PER_KEY: '1' });
    expect(byChoice((await split.generate(sampled)).frames)).toEqual(together);
  });

  it("a key that floods does not hold back another key's first token", async () => {
    // Four rows, three per key: the flood fills three, the fourth is there for anyone else.
    const svc = await start({ MAX_BATCH: '4', CHUNK_TARGET_MS: '100' });
    const stop = new AbortController();
    const flood = Array.from({ length: 20 }, (_, i) =>
      svc
        .generate(
          // Nucleus sampling takes the sorted path: slow enough to keep the batch busy.
          {
            prompts: [[5, 6, 7]],
            max_new_tokens: 1000,
            temperature: 1,
            top_p: 0.9,
            seed: i,
            key_id: 'flood',
          },
          { signal: stop.signal },
        )
        .catch(() => undefined),
    );
    try {
      await svc.waitForLog('generate.start', () => true);
      await new Promise((r) => setTimeout(r, 1500)); // the flood is running and queued
      const m = await svc.metrics();
      expect(m.get('gpu_queue_depth')).toBeGreaterThanOrEqual(10);
      const sent = performance.now();
      let firstTokenMs = 0;
      const other = await svc.generate(
        { prompts: [[8, 9]], max_new_tokens: 3, temperature: 0, key_id: 'other' },
        {
          onFrame: (f) => {
            if (f.type === 'tokens' && !firstTokenMs) firstTokenMs = performance.now() - sent;
          },
        },
      );
      expect(doneFrame(other.frames)).toMatchObject({ finish_reason: 'length', completion_tokens: 3 });
      // About one chunk (100 ms) plus its prefill; first come first served would wait for the
      // flood's thousands of tokens.
      expect(firstTokenMs).toBeGreaterThan(0);
      expect(firstTokenMs).toBeLessThan(1500);
    } finally {
      stop.abort();
      await Promise.all(flood);
    }
  });
});
