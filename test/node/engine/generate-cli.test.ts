import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
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
