// Downloads files from the Hugging Face hub (or a mirror at HF_ENDPOINT) with resumption,
// SHA-256 verification of LFS files and a progress bar.

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createProgress } from './progress.ts';

export const DEFAULT_HUB = 'https://huggingface.co';

export interface HubFile {
  path: string;
  size: number;
  /** SHA-256 of the content, for files stored in LFS. */
  sha256?: string;
}

export interface HubOptions {
  endpoint?: string;
  token?: string;
  revision?: string;
  /** Progress output; null disables it. */
  stream?: NodeJS.WriteStream | null;
}

export class HubError extends Error {
  override name = 'HubError';
}

function hubEndpoint(o: HubOptions): string {
  return (o.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_HUB).replace(/\/+$/, '');
}

async function hubFetch(url: string, o: HubOptions, init: RequestInit = {}): Promise<Response> {
  const token = o.token ?? process.env.HF_TOKEN;
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  try {
    return await fetch(url, { ...init, headers, redirect: 'follow' });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new HubError(
      `cannot reach ${new URL(url).origin} (${cause?.code ?? cause?.message ?? String(err)}). ` +
        'This machine looks offline: set HF_ENDPOINT to a reachable mirror, or download the files elsewhere and copy them here.',
    );
  }
}

function explainStatus(res: Response, what: string): HubError {
  if (res.status === 401 || res.status === 403) {
    return new HubError(
      `${what}: HTTP ${res.status}; the repository may be gated or private: set HF_TOKEN to an access token`,
    );
  }
  if (res.status === 404)
    return new HubError(`${what}: not found (HTTP 404); check the repository name and revision`);
  return new HubError(`${what}: HTTP ${res.status}`);
}

/** Lists every file of a model repository with sizes (and SHA-256 for LFS files). */
export async function listRepoFiles(repo: string, o: HubOptions = {}): Promise<HubFile[]> {
  const rev = encodeURIComponent(o.revision ?? 'main');
  const url = `${hubEndpoint(o)}/api/models/${repo}/tree/${rev}?recursive=true`;
  const res = await hubFetch(url, o);
  if (!res.ok) throw explainStatus(res, `listing ${repo}`);
  const entries = (await res.json()) as Array<{
    type: string;
    path: string;
    size: number;
    lfs?: { oid?: string };
  }>;
  return entries
    .filter((e) => e.type === 'file')
    .map((e) => ({ path: e.path, size: e.size, ...(e.lfs?.oid ? { sha256: e.lfs.oid } : {}) }));
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return -1;
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/**
 * Downloads one file to `dest`. Bytes go to `dest.part` first; an interrupted download resumes
 * from there with a Range request. A complete file of the right size (and hash) is kept as is.
 */
export async function downloadFile(
  repo: string,
  file: HubFile,
  dest: string,
  o: HubOptions = {},
): Promise<'kept' | 'downloaded'> {
  if ((await fileSize(dest)) === file.size && (!file.sha256 || (await sha256File(dest)) === file.sha256))
    return 'kept';
  await mkdir(dirname(dest), { recursive: true });
  const part = `${dest}.part`;
  let have = Math.max(0, await fileSize(part));
  if (have > file.size) have = 0;
  const rev = encodeURIComponent(o.revision ?? 'main');
  const url = `${hubEndpoint(o)}/${repo}/resolve/${rev}/${file.path.split('/').map(encodeURIComponent).join('/')}`;
  const progressStream = o.stream === undefined ? process.stderr : o.stream;
  if (have < file.size) {
    const res = await hubFetch(url, o, have > 0 ? { headers: { range: `bytes=${have}-` } } : {});
    if (!res.ok || !res.body) throw explainStatus(res, `downloading ${file.path}`);
    const resumed = res.status === 206;
    if (!resumed) have = 0;
    const progress = progressStream
      ? createProgress(file.path, { total: file.size, stream: progressStream })
      : null;
    progress?.tick(have);
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
    body.on('data', (chunk: Buffer) => progress?.tick(chunk.length));
    await pipeline(body, createWriteStream(part, { flags: resumed ? 'a' : 'w' }));
    progress?.done(resumed ? 'resumed and complete' : 'complete');
  }
  const got = await fileSize(part);
  if (got !== file.size)
    throw new HubError(
      `${file.path}: expected ${file.size} bytes, got ${got}; run the command again to resume`,
    );
  if (file.sha256) {
    const actual = await sha256File(part);
    if (actual !== file.sha256) {
      await rename(part, `${part}.corrupt`);
      throw new HubError(
        `${file.path}: SHA-256 mismatch (expected ${file.sha256}, got ${actual}); run again to refetch`,
      );
    }
  }
  await rename(part, dest);
  return 'downloaded';
}

/** Picks what a converter needs from a model repository: config and one complete set of weights. */
export function selectCheckpointFiles(files: HubFile[]): HubFile[] {
  const byPath = new Map(files.map((f) => [f.path, f]));
  const config = byPath.get('config.json');
  if (!config) throw new HubError('the repository has no config.json; is it a model checkpoint?');
  const safetensors = files.filter((f) => /^model(-\d+-of-\d+)?\.safetensors$/.test(f.path));
  const torch = files.filter((f) => /^pytorch_model(-\d+-of-\d+)?\.bin$/.test(f.path));
  const weights = safetensors.length > 0 ? safetensors : torch;
  if (weights.length === 0)
    throw new HubError('the repository has neither *.safetensors nor pytorch_model*.bin weights');
  const index = byPath.get(
    safetensors.length > 0 ? 'model.safetensors.index.json' : 'pytorch_model.bin.index.json',
  );
  return [config, ...(index ? [index] : []), ...weights];
}

export async function downloadRepoFiles(
  repo: string,
  files: HubFile[],
  outDir: string,
  o: HubOptions = {},
): Promise<void> {
  for (const f of files) await downloadFile(repo, f, join(outDir, f.path), o);
}
