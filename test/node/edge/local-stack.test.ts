// The edge under `wrangler dev` (bundled by wrangler, as `npm start` and deploy do) in front of
// the real GPU function serving the tiny fixture model, driven from Node: the keys CLI against
// the admin API, and the official openai client against the API, checked against the fixture's
// golden greedy continuation.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { run } from '../../../scripts/cli/keys.ts';
import { COMPILED_TOKENIZER_PATH, REPO_ROOT } from '../../../scripts/lib/tokenizer-asset.ts';
import { MODEL_ID } from '../../../shared/src/model-facts.ts';
import { Tokenizer } from '../../../shared/src/tokenizer/index.ts';
import { type LocalEdge, prepareTokenizer, startLocalEdge } from '../../edge/node/local-edge.ts';
import {
  convertTinyModel,
  goldenGreedy,
  HAVE_FIXTURES,
  scratchDir,
  TINY_FIXTURE,
} from '../gpu-function/helpers/model.ts';
import { ServiceProcess, TEST_SECRET } from '../gpu-function/helpers/service.ts';

const ADMIN_TOKEN = 'cli-test-admin-token';

/** Needs ../shared: the tokenizer model (bundled by the worker) and the tiny model fixture. */
const READY = HAVE_FIXTURES && (await prepareTokenizer());

let scratch: string;
let gpu: ServiceProcess;
let edge: LocalEdge;

beforeAll(async () => {
  if (!READY) return;
  scratch = await scratchDir('edge-stack');
  gpu = await ServiceProcess.start({ MODEL_URI: await convertTinyModel(scratch), PRELOAD: '1' });
  await gpu.waitForLog('model.ready');
  edge = await startLocalEdge({ GPU_FUNCTION_URL: gpu.base, GPU_HMAC_SECRET: TEST_SECRET, ADMIN_TOKEN });
}, 120_000);

afterAll(async () => {
  await edge?.close();
  if (gpu) {
    gpu.child.kill('SIGTERM');
    await gpu.exited;
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Runs `keys ...` in this process (fast), capturing what it prints. */
async function cli(args: string[], env: Record<string, string> = {}) {
  const saved = { ...process.env };
  Object.assign(process.env, { EDGE_URL: edge.url, ADMIN_TOKEN }, env);
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const status = await run(['keys', ...args]);
    return { status, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.env = saved;
  }
}

describe.skipIf(!READY)('keys CLI against wrangler dev', () => {
  it('creates, lists, shows, updates and revokes keys', async () => {
    const created = await cli(['create', '--name', 'cli-user', '--requests-per-minute', '7']);
    expect(created.status, created.stderr).toBe(0);
    expect(created.stderr).toMatch(/shown only this once/);
    const { id, key, limits } = JSON.parse(created.stdout) as {
      id: string;
      key: string;
      limits: Record<string, number>;
    };
    expect(key).toMatch(/^sk-jslm-/);
    expect(limits.requests_per_minute).toBe(7);

    // Once through the real command line, as `npm run -s cli -- keys list` runs it.
    const listed = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts/cli.ts'), 'keys', 'list'], {
      cwd: REPO_ROOT,
      env: { ...process.env, EDGE_URL: edge.url, ADMIN_TOKEN },
      encoding: 'utf8',
    });
    expect(listed.status).toBe(0);
    expect(listed.stdout).toMatch(
      new RegExp(`${id}\\s+cli-user\\s+sk-jslm-\\.\\.\\.${key.slice(-4)}\\s+7\\s`),
    );
    expect(listed.stdout).not.toContain(key);

    const updated = await cli(['update', id, '--tokens-per-day', '5000', '--name', 'renamed']);
    expect(updated.status, updated.stderr).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ name: 'renamed', limits: { tokens_per_day: 5000 } });

    const shown = await cli(['show', id]);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, usage: { tokens_today: 0 } });

    const models = await fetch(`${edge.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    expect(models.status).toBe(200);
    expect((await cli(['revoke', id])).status).toBe(0);
    const refused = await fetch(`${edge.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    expect(refused.status).toBe(401);
  });

  it('explains bad usage and failures clearly', async () => {
    const cases: [string[], Record<string, string>, number, RegExp][] = [
      [['create'], {}, 2, /needs --name/],
      [['create', '--name', 'x', '--tokens-per-day', '0'], {}, 2, /positive integer/],
      [['create', '--name', 'x', '--tokens-per-day', '1e3x'], {}, 2, /positive integer/],
      [['update', 'key_x'], {}, 2, /nothing to change/],
      [['revoke'], {}, 2, /needs a key id/],
      [['frobnicate'], {}, 2, /unknown keys command/],
      [['list', '--bogus'], {}, 2, /bogus/],
      [['list'], { ADMIN_TOKEN: 'wrong' }, 1, /Invalid admin token\. \(HTTP 401\)/],
      [['show', 'key_missing'], {}, 1, /No API key with id 'key_missing'\. \(HTTP 404\)/],
      [['list', '--url', 'http://127.0.0.1:1'], {}, 1, /cannot reach the edge/],
    ];
    for (const [args, env, status, message] of cases) {
      const r = await cli(args, env);
      expect(r.status, args.join(' ')).toBe(status);
      expect(r.stderr).toMatch(message);
    }
  });
});

describe.skipIf(!READY)('openai client through the edge to the real GPU function', () => {
  it('completes the golden greedy continuation, with and without streaming', async () => {
    const created = await cli(['create', '--name', 'openai']);
    const { key } = JSON.parse(created.stdout) as { key: string };
    const client = new OpenAI({ apiKey: key, baseURL: `${edge.url}/v1`, maxRetries: 0 });
    const golden = await goldenGreedy();
    const tokenizer = Tokenizer.fromCompiled(new Uint8Array(readFileSync(COMPILED_TOKENIZER_PATH)));
    const expected = tokenizer.decode(golden.new_tokens);
    const request = {
      model: MODEL_ID,
      prompt: golden.prompt_ids,
      max_tokens: golden.new_tokens.length,
      temperature: 0,
    };

    const completion = await client.completions.create(request);
    expect(completion.choices[0]?.text).toBe(expected);
    expect(completion.choices[0]?.finish_reason).toBe('length');
    expect(completion.usage).toEqual({
      prompt_tokens: golden.prompt_ids.length,
      completion_tokens: golden.new_tokens.length,
      total_tokens: golden.prompt_ids.length + golden.new_tokens.length,
    });

    const stream = await client.completions.create({ ...request, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(expected);
  });

  it('scores a prompt (echo, logprobs, max_tokens 0) as log-softmax of the golden logits', async () => {
    const created = await cli(['create', '--name', 'scores']);
    const { key } = JSON.parse(created.stdout) as { key: string };
    const client = new OpenAI({ apiKey: key, baseURL: `${edge.url}/v1`, maxRetries: 0 });
    const golden = JSON.parse(readFileSync(path.join(TINY_FIXTURE, 'golden.json'), 'utf8')) as {
      logit_ids: number[];
      sequences: { len40: { input_ids: number[]; logits_at_ids: number[][]; logsumexp: number[] } };
    };
    const block = golden.sequences.len40;
    const completion = await client.completions.create({
      model: MODEL_ID,
      prompt: block.input_ids,
      max_tokens: 0,
      echo: true,
      logprobs: 1,
    });
    const lp = completion.choices[0]?.logprobs;
    expect(lp?.token_logprobs?.[0]).toBeNull();
    let worst = 0;
    for (let t = 1; t < block.input_ids.length; t++) {
      const at = golden.logit_ids.indexOf(block.input_ids[t] as number);
      const want = (block.logits_at_ids[t - 1]?.[at] as number) - (block.logsumexp[t - 1] as number);
      worst = Math.max(worst, Math.abs((lp?.token_logprobs?.[t] as number) - want));
    }
    expect(worst).toBeLessThan(1e-5);
    expect(completion.usage?.completion_tokens).toBe(0);
  });

  it('cuts at a stop sequence and tokenizes text prompts', async () => {
    const created = await cli(['create', '--name', 'stop']);
    const { key } = JSON.parse(created.stdout) as { key: string };
    const client = new OpenAI({ apiKey: key, baseURL: `${edge.url}/v1`, maxRetries: 0 });
    const golden = await goldenGreedy();
    const tokenizer = Tokenizer.fromCompiled(new Uint8Array(readFileSync(COMPILED_TOKENIZER_PATH)));
    const full = tokenizer.decode(golden.new_tokens);
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
    const completion = await client.completions.create({
      model: MODEL_ID,
      prompt: golden.prompt_ids,
      max_tokens: golden.new_tokens.length,
      temperature: 0,
      stop,
    });
    expect(completion.choices[0]).toMatchObject({
      text: full.slice(0, full.indexOf(stop)),
      finish_reason: 'stop',
    });

    const text = await client.completions.create({
      model: MODEL_ID,
      prompt: '今日は',
      max_tokens: 3,
      seed: 7,
    });
    expect(text.usage?.prompt_tokens).toBe(tokenizer.encode('今日は').length);
    expect(text.usage?.completion_tokens).toBeLessThanOrEqual(3);
  });
});
