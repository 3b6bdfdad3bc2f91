// The `convert` command as scripts and people run it: exit codes, stdout, stderr progress.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { H128, hasFixtures, listDir, useTempRoot } from './helpers.ts';

async function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['scripts/cli.ts', 'convert', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

describe.skipIf(!hasFixtures)('npm run cli -- convert', () => {
  const tempRoot = useTempRoot();

  it('converts, prints the output folder on stdout and progress lines on stderr', async () => {
    const out = join(await tempRoot(), 'model');
    const r = await cli('--checkpoint', H128, '--out', out, '--dtype', 'float16');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${out}\n`);
    expect(r.stderr).toMatch(/^weights \[#{24}\] 100\.0% /m);
    expect(r.stderr).toMatch(
      /converted safetensors \(F32\) to float16: .* \(graphs are built for float16 when it is served\)/,
    );
    expect(await listDir(out)).toContain('manifest.json');
  });

  it('exits 1 with the reason for a bad checkpoint, leaving no output', async () => {
    const root = await tempRoot();
    const ckpt = join(root, 'ckpt');
    await mkdir(ckpt);
    await copyFile(join(H128, 'config.json'), join(ckpt, 'config.json'));
    const r = await cli('--checkpoint', ckpt, '--out', join(root, 'model'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^convert: .*ckpt: no weights found/m);
    expect(r.stdout).toBe('');
    expect(await listDir(root)).toEqual(['ckpt']);
  });

  it('exits 2 with usage for bad arguments', async () => {
    const missing = await cli('--checkpoint', H128);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--out is required[\s\S]*usage: npm run -s cli -- convert/);
    const dtype = await cli('--checkpoint', H128, '--out', '/tmp/x', '--dtype', 'int8');
    expect(dtype.code).toBe(2);
    expect(dtype.stderr).toMatch(/--dtype must be float32 or float16 \(got 'int8'\)/);
    const unknown = await cli('--checkpoint', H128, '--out', '/tmp/x', '--bogus');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown option '--bogus'/);
  });
});
