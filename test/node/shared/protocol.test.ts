import { describe, expect, it } from 'vitest';
import { ApiError } from '../../../shared/src/errors.ts';
import { parseGenerateRequest } from '../../../shared/src/protocol/generate.ts';
import { encodeFrame, readFrames } from '../../../shared/src/protocol/ndjson.ts';

function rejects(body: unknown, param: string | null) {
  try {
    parseGenerateRequest(body);
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(400);
    expect((err as ApiError).param).toBe(param);
    return;
  }
  throw new Error(`accepted ${JSON.stringify(body)}`);
}

describe('generate request validation', () => {
  it('fills defaults', () => {
    const v2 = {
      version: 2,
      prompts: [[5, 6]],
      n: 1,
      sampling: {
        temperature: 1,
        top_p: 1,
        top_k: 0,
        min_p: 0,
        presence_penalty: 0,
        frequency_penalty: 0,
        logit_bias: [],
        repetition_penalty: 1,
      },
      stopping: { max_new_tokens: 4, ignore_eos: false, min_tokens: 0, stop_ids: [] },
      output: {},
    };
    expect(parseGenerateRequest({ version: 2, prompts: [[5, 6]], stopping: { max_new_tokens: 4 } })).toEqual(
      v2,
    );
    // Version 1 (flat fields) is read as version 2.
    expect(parseGenerateRequest({ prompt_ids: [5, 6], max_new_tokens: 4 })).toEqual(v2);
  });

  it('checks the groups with the shared parameter table, by wire name', () => {
    const ok = parseGenerateRequest({
      prompts: [[1]],
      sampling: { temperature: 0.5, top_k: -1, seed: 9 },
      stopping: { max_new_tokens: 3, stop_ids: [7] },
    });
    expect(ok.sampling).toMatchObject({
      temperature: 0.5,
      top_p: 1,
      top_k: 0,
      repetition_penalty: 1,
      seed: 9,
    });
    expect(ok.stopping).toMatchObject({ max_new_tokens: 3, stop_ids: [7] });
    rejects({ prompts: [[1]], sampling: { temperature: 3 } }, 'temperature');
    rejects({ prompts: [[1]], sampling: { max_new_tokens: 3 } }, 'sampling.max_new_tokens');
    rejects({ prompts: [[1]], stopping: { stop_ids: new Array(17).fill(1) } }, 'stop_ids');
    rejects({ prompts: [[1]], sampling: [] }, 'sampling');
    rejects({ version: 3, prompts: [[1]] }, 'version');
    // Output: log-probabilities 0..5, and max_new_tokens 0 only to score the prompt.
    const scored = parseGenerateRequest({
      prompts: [[1, 2]],
      stopping: { max_new_tokens: 0 },
      output: { logprobs: 5, score_prompt: true },
    });
    expect(scored.output).toEqual({ logprobs: 5, score_prompt: true });
    rejects({ prompts: [[1]], output: { logprobs: 6 } }, 'logprobs');
    rejects({ prompts: [[1]], stopping: { max_new_tokens: 0 } }, 'max_new_tokens');
    rejects({ prompts: [[1]], output: { score_prompt: 'yes' } }, 'score_prompt');
    // logit_bias travels as OpenAI writes it and is read as pairs; min_tokens <= max_new_tokens.
    const biased = parseGenerateRequest({
      prompts: [[1]],
      sampling: { logit_bias: { '7': -100, '12': 2.5 } },
    });
    expect(biased.sampling.logit_bias).toEqual([
      [7, -100],
      [12, 2.5],
    ]);
    rejects({ prompts: [[1]], sampling: { logit_bias: { x: 1 } } }, 'logit_bias');
    rejects({ prompts: [[1]], sampling: { logit_bias: { '1': 101 } } }, 'logit_bias');
    rejects({ prompts: [[1]], stopping: { max_new_tokens: 3, min_tokens: 4 } }, 'min_tokens');
  });

  it('rejects bad input naming the parameter', () => {
    rejects(null, null);
    rejects([1], null);
    rejects({ prompt_ids: [] }, 'prompt_ids');
    rejects({ prompt_ids: [1.5] }, 'prompt_ids');
    rejects({ prompt_ids: [65536] }, 'prompt_ids');
    rejects({ prompt_ids: [-1] }, 'prompt_ids');
    rejects({ prompt_ids: 'abc' }, 'prompt_ids');
    rejects({ prompt_ids: [1], max_new_tokens: 0 }, 'max_new_tokens');
    rejects({ prompt_ids: new Array(2000).fill(5), max_new_tokens: 49 }, 'max_new_tokens');
    rejects({ prompt_ids: [1], temperature: -1 }, 'temperature');
    rejects({ prompt_ids: [1], temperature: Number.NaN }, 'temperature');
    rejects({ prompt_ids: [1], top_p: 0 }, 'top_p');
    rejects({ prompt_ids: [1], top_k: 2.5 }, 'top_k');
    rejects({ prompt_ids: [1], repetition_penalty: 0 }, 'repetition_penalty');
    rejects({ prompt_ids: [1], seed: -3 }, 'seed');
    rejects({ prompt_ids: [1], bogus: 1 }, 'bogus');
  });

  it('takes several prompts, n samples of each and a key id; bounds them naming the field', () => {
    const req = parseGenerateRequest({ prompts: [[1], [2, 3]], n: 3, key_id: 'k_1', max_new_tokens: 2 });
    expect(req).toMatchObject({ prompts: [[1], [2, 3]], n: 3, key_id: 'k_1' });
    rejects({ prompts: [] }, 'prompts');
    rejects({ prompts: [[1], []] }, 'prompts');
    rejects({ prompts: new Array(21).fill([1]) }, 'prompts');
    rejects({ prompts: [[1]], prompt_ids: [1] }, 'prompts');
    rejects({ prompts: [[1]], n: 0 }, 'n');
    rejects({ prompts: [[1], [2]], n: 65 }, 'n');
    rejects({ prompts: [[1]], key_id: '' }, 'key_id');
    rejects({ prompts: [[1]], key_id: 'x'.repeat(129) }, 'key_id');
    rejects({ prompts: [[1], new Array(2000).fill(5)], max_new_tokens: 49 }, 'max_new_tokens');
  });

  it('accepts the context limit exactly', () => {
    expect(
      parseGenerateRequest({ prompt_ids: new Array(2000).fill(5), max_new_tokens: 48 }).stopping
        .max_new_tokens,
    ).toBe(48);
  });
});

describe('ndjson frames', () => {
  it('round-trips frames split at arbitrary byte boundaries', async () => {
    const frames = [
      { type: 'tokens', ids: [1, 2] },
      { type: 'heartbeat', phase: 'queued' },
      { type: 'done', text: 'é' },
    ];
    const bytes = new Uint8Array(frames.flatMap((f) => [...encodeFrame(f)]));
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 3) c.enqueue(bytes.slice(i, i + 3));
        c.close();
      },
    });
    const out: unknown[] = [];
    for await (const f of readFrames(stream)) out.push(f);
    expect(out).toEqual(frames);
  });

  it('reports a truncated stream', async () => {
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"type":"tok'));
        c.close();
      },
    });
    await expect(async () => {
      for await (const _ of readFrames(stream)) {
        /* drain */
      }
    }).rejects.toThrow(/middle of a frame/);
  });
});
