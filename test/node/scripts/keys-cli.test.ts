// How `cli keys` gets the admin token: from the environment, .dev.vars or a prompt on the
// terminal; never from the command line, where the process list would show it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { promptSecret } from '../../../scripts/lib/prompt-secret.ts';
import { REPO_ROOT } from '../../../scripts/lib/tokenizer-asset.ts';

const empty = mkdtempSync(path.join(os.tmpdir(), 'keys-cli-'));
afterAll(() => rmSync(empty, { recursive: true, force: true }));

function keys(args: string[], env: Record<string, string> = {}) {
  // Run from a folder without .dev.vars, stdin not a terminal.
  return spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts/cli.ts'), 'keys', ...args], {
    cwd: empty,
    env: { PATH: process.env.PATH ?? '', EDGE_URL: 'http://127.0.0.1:1', ...env },
    input: '',
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('cli keys: the admin token', () => {
  it('is refused on the command line', () => {
    const r = keys(['list', '--admin-token', 'secret-on-the-command-line']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--admin-token is not accepted .* set ADMIN_TOKEN/);
  });

  it('comes from ADMIN_TOKEN; without it and without a terminal, the CLI says how to give it', () => {
    const none = keys(['list']);
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(
      /no admin token: set ADMIN_TOKEN, add it to \.dev\.vars, or run in a terminal/,
    );
    const fromEnv = keys(['list'], { ADMIN_TOKEN: 'from-the-environment' });
    expect(fromEnv.status).toBe(1); // past the token: the edge at port 1 cannot be reached
    expect(fromEnv.stderr).toMatch(/cannot reach the edge/);
  });

  it('is read from the terminal with echo off', async () => {
    const terminal = Object.assign(new PassThrough(), {
      isTTY: true,
      raw: [] as boolean[],
      setRawMode(mode: boolean) {
        this.raw.push(mode);
        return this;
      },
    });
    const shown = new PassThrough();
    let text = '';
    shown.on('data', (d: Buffer) => {
      text += d.toString();
    });
    const answer = promptSecret('admin token (not shown): ', terminal, shown);
    terminal.write('s3cr\u007fet-token\r');
    expect(await answer).toBe('s3cet-token');
    expect(terminal.raw).toEqual([true, false]);
    expect(text).toBe('admin token (not shown): \n');
    // Not a terminal: nobody to ask.
    expect(await promptSecret('?', new PassThrough(), shown)).toBeNull();
  });
});
