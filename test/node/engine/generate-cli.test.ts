import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, fixtureModelDir, type Golden, readGolden, removeDir } from './fixture-model.ts';

const run = promisify(execFile);
const NODE = path.resolve('node_modules/.bin/node');
const cli = (args: string[]) =>
  run(NODE, ['scripts/cli.ts', 'generate', ...args], { cwd: process.cwd() }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

describe.skipIf(!existsSync(FIXTURES))('generate CLI', () => {
  let dir: string;
  let golden: Golden;
  beforeAll(async () => {
    dir = await fixtureModelDir('h128-seed4321', 'float32');
    golden = await readGolden('h128-seed4321');
  });
  afterAll(() => removeDir(dir));

  it('prints exactly one JSON array: the golden greedy continuation', async () => {
    const ids = golden.greedy.prompt_ids.join(',');
    const r = await cli(['--model', dir, '--ids', ids, '--max-new-tokens', '20', '--temperature', '0']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${JSON.stringify(golden.greedy.new_tokens)}\n`);
  });

  it('--score prints the prompt scores: log-softmax of the golden logits (first null)', async () => {
    const full = JSON.parse(readFileSync(path.join(FIXTURES, 'h128-seed4321', 'golden.json'), 'utf8')) as {
      logit_ids: number[];
      sequences: { len40: { input_ids: number[]; logits_at_ids: number[][]; logsumexp: number[] } };
    };
    const block = full.sequences.len40;
    const r = await cli([
      '--model',
      dir,
      '--ids',
      block.input_ids.join(','),
      '--max-new-tokens',
      '0',
      '--score',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { ids: number[]; prompt_logprobs: ({ logprob: number } | null)[] };
    expect(out.ids).toEqual([]);
    expect(out.prompt_logprobs[0]).toBeNull();
    let worst = 0;
    for (let t = 1; t < block.input_ids.length; t++) {
      const at = full.logit_ids.indexOf(block.input_ids[t] as number);
      const want = (block.logits_at_ids[t - 1]?.[at] as number) - (block.logsumexp[t - 1] as number);
      worst = Math.max(worst, Math.abs((out.prompt_logprobs[t]?.logprob as number) - want));
    }
    expect(worst).toBeLessThan(1e-5);
  });

  it('fails with a clear message and exit code 2 on bad input', async () => {
    const tooLong = await cli(['--model', dir, '--ids', '3,4', '--max-new-tokens', '2047']);
    expect(tooLong.code).toBe(2);
    expect(tooLong.stdout).toBe('');
    expect(tooLong.stderr).toMatch(/maximum context length is 2048/);
    const missing = await cli(['--model', path.join(dir, 'nope'), '--ids', '3', '--max-new-tokens', '2']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no config\.json/);
  });
});
