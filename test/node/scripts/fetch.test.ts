import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile, HubError, listRepoFiles, selectCheckpointFiles } from '../../../scripts/lib/hub.ts';

const run = promisify(execFile);

// A loopback stand-in for the hub's two endpoints (tree listing, resolve with Range).
const files: Record<string, Buffer> = {
  'config.json': Buffer.from('{"vocab_size": 8}'),
  'pytorch_model-00001-of-00002.bin': Buffer.alloc(300_000, 7),
  'pytorch_model-00002-of-00002.bin': Buffer.alloc(200_000, 9),
  'pytorch_model.bin.index.json': Buffer.from('{}'),
  'tokenizer.model': Buffer.from('tokenizer-bytes'),
  'modeling.py': Buffer.from('# code'),
};
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let cutNextDownload = false;
let rangeRequests = 0;

function hub(): Server {
  return createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    if (req.headers.authorization === 'Bearer bad') {
      res.writeHead(401).end();
      return;
    }
    const tree = url.pathname.match(/^\/api\/models\/([^/]+\/[^/]+)\/tree\/main$/);
    if (tree) {
      if (tree[1] === 'missing/repo') return void res.writeHead(404).end();
      const list = Object.entries(files).map(([path, b]) => ({
        type: 'file',
        path,
        size: b.length,
        ...(b.length > 1000 || path === 'tokenizer.model' ? { lfs: { oid: sha(b) } } : {}),
      }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(list));
      return;
    }
    const file = url.pathname.match(/^\/[^/]+\/[^/]+\/resolve\/main\/(.+)$/);
    const body = file ? files[decodeURIComponent(file[1]!)] : undefined;
    if (!body) return void res.writeHead(404).end();
    const range = req.headers.range?.match(/^bytes=(\d+)-$/);
    const from = range ? Number(range[1]) : 0;
    if (range) rangeRequests++;
    res.writeHead(range ? 206 : 200, { 'content-length': body.length - from });
    if (cutNextDownload) {
      cutNextDownload = false;
      res.write(body.subarray(from, from + 100_000));
      setTimeout(() => res.destroy(), 20);
      return;
    }
    res.end(body.subarray(from));
  });
}

describe('hub downloads', () => {
  let server: Server;
  let endpoint = '';
  let dir = '';
  beforeAll(async () => {
    server = hub().listen(0, '127.0.0.1');
    await once(server, 'listening');
    endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    dir = await mkdtemp(join(tmpdir(), 'hub-'));
  });
  afterAll(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('selects config, index and one weight set', async () => {
    const list = await listRepoFiles('org/model', { endpoint });
    expect(selectCheckpointFiles(list).map((f) => f.path)).toEqual([
      'config.json',
      'pytorch_model.bin.index.json',
      'pytorch_model-00001-of-00002.bin',
      'pytorch_model-00002-of-00002.bin',
    ]);
  });

  it('resumes an interrupted download with a Range request and verifies SHA-256', async () => {
    const list = await listRepoFiles('org/model', { endpoint });
    const big = list.find((f) => f.path === 'pytorch_model-00001-of-00002.bin')!;
    const dest = join(dir, 'resume', big.path);
    cutNextDownload = true;
    await expect(downloadFile('org/model', big, dest, { endpoint, stream: null })).rejects.toThrow();
    const before = rangeRequests;
    expect(await downloadFile('org/model', big, dest, { endpoint, stream: null })).toBe('downloaded');
    expect(rangeRequests).toBe(before + 1);
    expect(sha(await readFile(dest))).toBe(sha(files[big.path]!));
    expect(await downloadFile('org/model', big, dest, { endpoint, stream: null })).toBe('kept');
  });

  it('explains missing repositories, gated access and being offline', async () => {
    await expect(listRepoFiles('missing/repo', { endpoint })).rejects.toThrow(/not found/);
    await expect(listRepoFiles('org/model', { endpoint, token: 'bad' })).rejects.toThrow(/HF_TOKEN/);
    const closed = createServer().listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as { port: number }).port;
    closed.close();
    await once(closed, 'close');
    const err = await listRepoFiles('org/model', { endpoint: `http://127.0.0.1:${port}` }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HubError);
    expect((err as Error).message).toMatch(/offline/);
  });

  it('fetches a checkpoint and the tokenizer through the CLI', async () => {
    const env = { ...process.env, HF_ENDPOINT: endpoint };
    const out = join(dir, 'cli-model');
    const r = await run(process.execPath, ['scripts/cli.ts', 'fetch', 'model', 'org/model', '--out', out], {
      env,
    });
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/checkpoint ready/);
    expect((await readFile(join(out, 'pytorch_model-00002-of-00002.bin'))).length).toBe(200_000);
    const tok = join(dir, 'tok', 'novelai.model');
    await run(process.execPath, ['scripts/cli.ts', 'fetch', 'tokenizer', '--out', tok], { env });
    expect((await readFile(tok)).toString()).toBe('tokenizer-bytes');
    const bad = await run(process.execPath, ['scripts/cli.ts', 'fetch', 'model', 'not a repo'], {
      env,
    }).catch((e) => e);
    expect(bad.code).toBe(2);
  });
});
