// `npm start` as a newcomer runs it: the real scripts/start.ts process (on free ports and a
// scratch data folder), serving a real checkpoint given by MODEL_CHECKPOINT (the tiny fixture),
// with a short idle timeout so the GPU function scales to zero between requests. Ctrl-C must
// stop everything it started, a second run must reuse the data, and even SIGKILL must leave
// no process behind.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../scripts/lib/tokenizer-asset.ts';
import {
  type Completion,
  completionRequest,
  HAVE_TINY_CHECKPOINT,
  HAVE_TOKENIZER,
  loadTokenizer,
  scratchDir,
  TINY_CHECKPOINT,
} from './helpers.ts';
import { alive, commands, descendants, HAVE_PROC } from './processes.ts';

const READY = HAVE_TOKENIZER && HAVE_TINY_CHECKPOINT && HAVE_PROC;
const IDLE_TIMEOUT_S = 3;

class StartProcess {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;

  constructor(dataDir: string) {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      MODEL_CHECKPOINT: TINY_CHECKPOINT,
      IDLE_TIMEOUT_S: String(IDLE_TIMEOUT_S),
    };
    delete env.LOCAL_API_KEY; // the key is made on the first run and must be the same on the second
    // Its own process group, like a command in a terminal: Ctrl-C signals that group.
    this.child = spawn(
      process.execPath,
      ['scripts/start.ts', '--data-dir', dataDir, '--edge-port', '0', '--gpu-port', '0', '--s3-port', '0'],
      { cwd: REPO_ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const collect = (b: Buffer) => {
      this.output += b.toString();
    };
    this.child.stdout?.on('data', collect);
    this.child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  count(text: string): number {
    return this.output.split(text).length - 1;
  }

  /** Resolves with the first match of `pattern` in the output, past or future. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(this.output);
      if (m) return m;
      if (this.child.exitCode !== null) throw new Error(`npm start exited:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async ready(): Promise<{ edgeUrl: string; key: string; seconds: number }> {
    const [, seconds] = await this.waitFor(/The local stack is ready \(([\d.]+) s\)/, 180_000);
    const edgeUrl = /API \(edge, wrangler dev\)\s+(http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(this.output)?.[1];
    const key = /API key\s+(sk-jslm-[A-Za-z0-9_-]+)/.exec(this.output)?.[1];
    if (!edgeUrl || !key) throw new Error(`the banner lacks the URL or the key:\n${this.output}`);
    return { edgeUrl, key, seconds: Number(seconds) };
  }

  /** Ctrl-C in a terminal. */
  interrupt(): void {
    process.kill(-this.pid, 'SIGINT');
  }
}

async function allGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = pids.filter(alive);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function goldenGreedy(): { prompt_ids: number[]; new_tokens: number[] } {
  const golden = JSON.parse(readFileSync(path.join(TINY_CHECKPOINT, 'golden.json'), 'utf8')) as {
    greedy: { prompt_ids: number[]; new_tokens: number[] };
  };
  return golden.greedy;
}

/** The ready-to-paste curl from the banner, as printed. */
function printedCurl(output: string): string {
  const lines = output.split('\n');
  const first = lines.findIndex((l) => l.trim().startsWith('curl '));
  if (first < 0) throw new Error(`no curl in the banner:\n${output}`);
  const command: string[] = [];
  for (const line of lines.slice(first)) {
    command.push(line.trim());
    if (!line.trimEnd().endsWith('\\')) break;
  }
  return command.join('\n');
}

const haveCurl = (() => {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

let dataDir: string;
let first: StartProcess;
let second: StartProcess | undefined;
let firstRun: { edgeUrl: string; key: string; seconds: number };

beforeAll(async () => {
  if (!READY) return;
  dataDir = await scratchDir('npm-start');
  first = new StartProcess(dataDir);
  firstRun = await first.ready();
}, 240_000);

afterAll(async () => {
  for (const run of [first, second]) {
    if (run && run.child.exitCode === null && run.child.signalCode === null) {
      process.kill(-run.pid, 'SIGKILL');
      await run.exited;
    }
  }
  // The guards take the children down within a few seconds of their parent.
  await new Promise((r) => setTimeout(r, 3000));
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}, 30_000);

afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  console.error(`npm start output:\n${first?.output}\n${second ? `second run:\n${second.output}` : ''}`);
});

describe.skipIf(!READY)('npm start', () => {
  it('prints where everything runs, the key, and a curl that works', async () => {
    expect(first.output).toContain(`checkpoint ${TINY_CHECKPOINT}`);
    expect(first.output).toMatch(/GPU function \(supervisor\)\s+http:\/\/127\.0\.0\.1:\d+/);
    expect(first.output).toMatch(/object storage \(s3rver\)\s+http:\/\/127\.0\.0\.1:\d+/);
    expect(first.output).toContain(`exits after ${IDLE_TIMEOUT_S} s idle`);
    expect(first.output).toMatch(/\[model\]\s+converting /);

    // The model is the checkpoint: its golden greedy continuation comes back through the API.
    const golden = goldenGreedy();
    const res = await completionRequest(firstRun.edgeUrl, firstRun.key, {
      prompt: golden.prompt_ids,
      max_tokens: golden.new_tokens.length,
      temperature: 0,
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Completion;
    expect(body.choices[0]?.text).toBe(loadTokenizer().decode(golden.new_tokens));

    if (haveCurl) {
      const answer = execFileSync('sh', ['-c', `${printedCurl(first.output)} --silent --show-error`], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      const completion = JSON.parse(answer) as Completion;
      expect(completion.choices[0]?.text.length).toBeGreaterThan(0);
      expect(completion.usage.completion_tokens).toBeGreaterThan(0);
    }
  });

  it('answers a request after the idle timeout by starting the GPU function again (slower, not failed)', async () => {
    const request = async () => {
      const t0 = performance.now();
      const res = await completionRequest(firstRun.edgeUrl, firstRun.key, {
        prompt: 'こんにちは',
        max_tokens: 4,
        temperature: 0,
      });
      const body = (await res.json()) as Completion;
      return { status: res.status, text: body.choices?.[0]?.text, ms: performance.now() - t0 };
    };
    await request();
    const warm = await request(); // right after another one: certainly warm
    expect(warm.status).toBe(200);

    const exits = first.count('the GPU function exited');
    const starts = first.count('starting the GPU function');
    await first.waitFor(new RegExp(`(the GPU function exited[\\s\\S]*){${exits + 1}}`), 30_000);
    expect(first.output).toContain(`lifecycle.idle_exit idle_s=${IDLE_TIMEOUT_S}`);

    const cold = await request();
    expect(cold.status).toBe(200);
    expect(cold.text).toBe(warm.text);
    expect(first.count('starting the GPU function')).toBe(starts + 1);
    expect(cold.ms).toBeGreaterThan(warm.ms);
  });

  it('stops every process it started on Ctrl-C', async () => {
    const started = descendants(first.pid);
    expect(commands(started).join('\n')).toMatch(/wrangler/);
    expect(commands(started).join('\n')).toMatch(/s3rver/);
    first.interrupt();
    expect(await first.exited).toBe(0);
    expect(first.output).toMatch(/\[stack\]\s+stopped/);
    const left = await allGone(started, 10_000);
    expect(commands(left)).toEqual([]);
  });

  it('reuses the data on a second run: the model in the bucket, the same key', async () => {
    second = new StartProcess(dataDir);
    const again = await second.ready();
    console.log(`npm start ready in ${firstRun.seconds} s (first run), ${again.seconds} s (second run)`);
    expect(again.key).toBe(firstRun.key);
    expect(second.output).toMatch(/\[model\]\s+already in the bucket/);
    expect(second.output).not.toMatch(/converting|registered the local API key/);
    const res = await completionRequest(again.edgeUrl, again.key, { prompt: 'こんにちは', max_tokens: 2 });
    expect(res.status).toBe(200);
    await res.body?.cancel();
  });

  it('leaves no process behind even when killed outright', async () => {
    const run = second!;
    const started = descendants(run.pid);
    expect(started.length).toBeGreaterThan(3);
    process.kill(-run.pid, 'SIGKILL');
    await run.exited;
    const left = await allGone(started, 10_000);
    expect(commands(left)).toEqual([]);
  });
});
