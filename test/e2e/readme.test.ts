// The README's "Run it locally" section and `npm start -- --help` name every setting the local
// stack reads, and nothing that is not a declared setting.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../scripts/lib/tokenizer-asset.ts';
import { EDGE_SETTINGS, GPU_FUNCTION_SETTINGS, LOCAL_STACK_SETTINGS } from '../../shared/src/config.ts';

const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
const section = /## Run it locally\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? '';
const tableNames = [...section.matchAll(/^\| `([A-Z0-9_]+)`/gm)].map((m) => m[1]!);

describe('the local stack documentation', () => {
  it('lists every local stack setting in the README, and only declared settings', () => {
    expect(section).not.toBe('');
    for (const name of Object.keys(LOCAL_STACK_SETTINGS)) expect(tableNames).toContain(name);
    const declared = new Set([
      ...Object.keys(LOCAL_STACK_SETTINGS),
      ...Object.keys(GPU_FUNCTION_SETTINGS),
      ...Object.keys(EDGE_SETTINGS),
    ]);
    expect(tableNames.filter((n) => !declared.has(n))).toEqual([]);
  });

  it('explains them in `npm start -- --help`', () => {
    const help = execFileSync(process.execPath, ['scripts/start.ts', '--help'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    for (const name of [...Object.keys(LOCAL_STACK_SETTINGS), 'IDLE_TIMEOUT_S', 'MODEL_URI']) {
      expect(help).toContain(name);
    }
    expect(help).toMatch(/--data-dir[\s\S]*--edge-port[\s\S]*--gpu-port[\s\S]*--s3-port/);
  });
});
