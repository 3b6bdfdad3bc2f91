// Shared pieces of the end-to-end suite: a stack on free ports in a scratch data folder, plain
// HTTP helpers for the OpenAI-style API and the admin API, and a server-sent events reader.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { memoryLog } from '../../scripts/lib/stack/log.ts';
import { type Stack, type StackOptions, startStack } from '../../scripts/lib/stack/stack.ts';
import { COMPILED_TOKENIZER_PATH, findTokenizerModel } from '../../scripts/lib/tokenizer-asset.ts';
import { MODEL_ID } from '../../shared/src/model-facts.ts';
import { Tokenizer } from '../../shared/src/tokenizer/index.ts';

/** The suite needs the tokenizer model (../shared holds it); without it, it skips. */
export const HAVE_TOKENIZER = (() => {
  try {
    findTokenizerModel();
    return true;
  } catch {
    return false;
  }
})();

export const TINY_CHECKPOINT = path.resolve(process.cwd(), '../shared/fixtures/model/tiny-seed1234');
export const HAVE_TINY_CHECKPOINT = existsSync(path.join(TINY_CHECKPOINT, 'model.safetensors'));

export async function scratchDir(name: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `jslm-e2e-${name}-`));
}

export interface TestStack {
  stack: Stack;
  dataDir: string;
  /** Everything the stack logged (printed when a test fails). */
  logText(): string;
  close(): Promise<void>;
}

/** Starts the stack `npm start` runs, on free ports in a scratch folder. */
export async function startTestStack(
  name: string,
  options: Partial<StackOptions> & Pick<StackOptions, 'idleTimeoutS'>,
): Promise<TestStack> {
  const dataDir = await scratchDir(name);
  const log = memoryLog();
  let stack: Stack;
  try {
    stack = await startStack({
      dataDir,
      secretsFile: path.join(dataDir, 'dev.vars'),
      ports: { edge: 0, gpu: 0, s3: 0 },
      log,
      ...options,
    });
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw new Error(`the stack did not start: ${(err as Error).message}\n${log.text()}`);
  }
  return {
    stack,
    dataDir,
    logText: () => log.text(),
    async close() {
      await stack.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function loadTokenizer(): Tokenizer {
  return Tokenizer.fromCompiled(new Uint8Array(readFileSync(COMPILED_TOKENIZER_PATH)));
}

export interface ApiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface Completion {
  choices: { text: string; finish_reason: string | null }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export function completionRequest(baseUrl: string, key: string, body: Record<string, unknown>) {
  return fetch(`${baseUrl}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL_ID, ...body }),
  });
}

export async function adminRequest(stack: Stack, method: string, route: string, body?: unknown) {
  const res = await fetch(`${stack.edgeUrl}/admin${route}`, {
    method,
    headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function createKey(
  stack: Stack,
  limits: Record<string, number> = {},
): Promise<{ id: string; key: string }> {
  const { status, body } = await adminRequest(stack, 'POST', '/keys', { name: 'e2e', limits });
  if (status !== 201) throw new Error(`creating a key failed: ${JSON.stringify(body)}`);
  return { id: body.id as string, key: body.key as string };
}

export interface KeyUsage {
  tokens_today: number;
  open_reservations: number;
}

export async function keyUsage(stack: Stack, id: string): Promise<KeyUsage> {
  const { body } = await adminRequest(stack, 'GET', `/keys/${id}`);
  return body.usage as KeyUsage;
}

/** Polls until `check` passes or the time is up; returns the last value. */
export async function eventually<T>(read: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The `data:` payloads of a server-sent events body, as they arrive (comments skipped). */
export async function* sseData(res: Response): AsyncGenerator<string> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    for (let at = buffer.indexOf('\n\n'); at >= 0; at = buffer.indexOf('\n\n')) {
      const event = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      const data = event
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trimStart());
      if (data.length > 0) yield data.join('\n');
    }
  }
}
