// `npm run -s cli -- logits`: the contract other checks rely on. One JSON array of all
// vocab_size logits per position, one line each, nothing else on stdout; bad input gets a
// message on stderr, exit code 2 and no stdout.

import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasFixtures, loadGolden, logitsAtIdsError, writeFixtureModelDir } from './fixture-model.ts';

const run = promisify(execFile);
const CLI = path.resolve(process.cwd(), 'scripts/cli.ts');

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { maxBuffer: 256 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const fixturesPresent = await hasFixtures();

describe.skipIf(!fixturesPresent)('logits command', () => {
  let h128: string;
  let tiny: string;
  beforeAll(async () => {
    h128 = await writeFixtureModelDir('h128-seed4321');
    tiny = await writeFixtureModelDir('tiny-seed1234');
  });
  afterAll(async () => {
    for (const dir of [h128, tiny]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  const parse = (stdout: string, vocab: number): Float32Array => {
    const lines = stdout.split('\n');
    expect(lines.pop()).toBe(''); // ends with a newline, nothing after it
    const rows = lines.map((l) => JSON.parse(l) as number[]);
    for (const r of rows) expect(r).toHaveLength(vocab);
    return Float32Array.from(rows.flat());
  };

  it('prints the golden logits, positions 0..n-1 by default', async () => {
    const golden = await loadGolden('h128-seed4321');
    const block = golden.sequences.len7;
    const out = await cli(['logits', '--model', h128, '--ids', block.input_ids.join(',')]);
    expect(out.code).toBe(0);
    const logits = parse(out.stdout, 1024);
    expect(logits.length).toBe(7 * 1024);
    expect(logitsAtIdsError(logits, 1024, golden.logit_ids, block.logits_at_ids)).toBeLessThanOrEqual(1e-5);
  });

  it('takes explicit positions', async () => {
    const golden = await loadGolden('h128-seed4321');
    const block = golden.position_gapped;
    const out = await cli([
      'logits',
      '--model',
      h128,
      '--ids',
      block.input_ids.join(','),
      '--positions',
      block.position_ids.join(','),
    ]);
    expect(out.code).toBe(0);
    expect(
      logitsAtIdsError(parse(out.stdout, 1024), 1024, golden.logit_ids, block.logits_at_ids),
    ).toBeLessThanOrEqual(1e-5);
  });

  it('prints all 65,536 logits per row for the full vocabulary', async () => {
    const golden = await loadGolden('tiny-seed1234');
    const block = golden.sequences.len7;
    const out = await cli(['logits', '--model', tiny, '--ids', block.input_ids.slice(0, 3).join(',')]);
    expect(out.code).toBe(0);
    const logits = parse(out.stdout, 65536);
    expect(
      logitsAtIdsError(logits, 65536, golden.logit_ids, block.logits_at_ids.slice(0, 3)),
    ).toBeLessThanOrEqual(1e-5);
  });

  it.each([
    [['--ids', '1,x'], /not an integer/],
    [['--ids', '1,1024'], /outside the vocabulary/],
    [['--ids', '1,2', '--positions', '0'], /1 entries for 2 ids/],
    [['--ids', '1,2', '--positions', '0,2048'], /outside \[0, 2048\)/],
    [['--ids', '1', '--bogus'], /Unknown option/],
    [['--ids', '1', '--model', '/nonexistent/model'], /no config\.json/],
  ])('rejects %j with a clear message', async (args, message) => {
    const withModel = args.includes('--model') ? args : ['--model', h128, ...args];
    const out = await cli(['logits', ...withModel]);
    expect(out.code).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr).toMatch(message);
  });
});
