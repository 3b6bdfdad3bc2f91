// The local object storage: s3rver (an S3-compatible server from npm) in its own process on
// loopback, keeping its objects as files under the data folder. It checks only the access key,
// which is its built-in S3RVER/S3RVER pair.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../tokenizer-asset.ts';
import type { StackLog } from './log.ts';
import { describeExit, ManagedProcess } from './managed-process.ts';
import { LOOPBACK } from './ports.ts';

export const S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
export const S3_REGION = 'us-east-1';
export const BUCKET = 'models';
const START_TIMEOUT_MS = 30_000;

export interface LocalS3 {
  endpoint: string;
  process: ManagedProcess;
}

export async function startS3Server(o: { dir: string; port: number; log: StackLog }): Promise<LocalS3> {
  mkdirSync(o.dir, { recursive: true });
  let announce: (port: number) => void = () => {};
  const listening = new Promise<number>((resolve) => {
    announce = resolve;
  });
  const proc = new ManagedProcess({
    command: process.execPath,
    args: [
      path.join(REPO_ROOT, 'node_modules/s3rver/bin/s3rver.js'),
      '--directory',
      o.dir,
      '--address',
      LOOPBACK,
      '--port',
      String(o.port),
      '--silent',
      '--configure-bucket',
      BUCKET,
    ],
    cwd: REPO_ROOT,
    env: process.env,
    onLine: (line) => {
      const m = /listening on \S+:(\d+)/.exec(line);
      if (m) announce(Number(m[1]));
      else if (line.trim() !== '') o.log.line('s3', line);
    },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const port = await Promise.race([
      listening,
      proc.exited.then((status) => {
        throw new Error(`the object storage (s3rver) exited while starting (${describeExit(status)})`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`s3rver did not listen within ${START_TIMEOUT_MS / 1000} s`)),
          START_TIMEOUT_MS,
        );
      }),
    ]);
    return { endpoint: `http://${LOOPBACK}:${port}`, process: proc };
  } catch (err) {
    await proc.stop(1000);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
