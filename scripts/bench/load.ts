// `npm run bench:load`: how fast the GPU function gets its weights and its first token.
//
// An S3-compatible server (s3rver, its own process) on loopback holds two converted models:
// the tiny test fixture and a random ~1 GB checkpoint (generated and cached under
// .cache/bench-load/). Prints:
//   - weight-load throughput of the loader (concurrent ranged GETs, the service's defaults and a
//     few other concurrencies) next to one plain single-stream GET of the largest file from the
//     same server, measured in pairs in the same run, and their ratio (target: at least 90%);
//   - cold start of the real service process, process start to first token, split into phases
//     (boot, manifest, fetch, verify, session create, first token), for both models; and the
//     warm start (verified cache reused) for comparison.
//
// Options: --rounds N (throughput rounds, medians over N; default 3), --skip-1g (tiny model only).

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { writeRandomCheckpoint } from '../../gpu-function/src/checkpoint/random.ts';
import { convertCheckpoint } from '../../gpu-function/src/convert/convert.ts';
import { silentLogger } from '../../gpu-function/src/log.ts';
import { MANIFEST_FILE, readManifest } from '../../gpu-function/src/model-folder/manifest.ts';
import { readSettings } from '../../gpu-function/src/settings.ts';
import { createS3Client } from '../../gpu-function/src/weights/s3-client.ts';
import { loadFromS3 } from '../../gpu-function/src/weights/s3-loader.ts';
import { uploadModel } from '../../gpu-function/src/weights/upload-model.ts';
import type { GenerateFrame } from '../../shared/src/protocol/generate.ts';
import { readFrames } from '../../shared/src/protocol/ndjson.ts';
import { signRequest } from '../../shared/src/signing.ts';
import { waitForPort } from '../lib/stack/ports.ts';

const ROOT = path.resolve('.cache/bench-load');
const TINY_FIXTURE = path.resolve('../shared/fixtures/model/tiny-seed1234');
/** ~0.29 B parameters in float32 (~1.16 GB): 12 layers of width 1024 and the real vocabulary. */
const ONE_GB_CONFIG = { hidden_size: 1024, num_hidden_layers: 12, num_attention_heads: 16 };
const BUCKET = 'bench';
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const SECRET = 'bench-load-secret';
const MB = 1e6;

const fmt = (x: number, digits = 1) => x.toFixed(digits);
const log = (s: string) => process.stderr.write(`${s}\n`);

interface BenchModel {
  name: string;
  dir: string;
  prefix: string;
  bytes: number;
  largestFile: string;
}

async function prepareModels(include1g: boolean): Promise<BenchModel[]> {
  const out: BenchModel[] = [];
  const tinyDir = path.join(ROOT, 'tiny');
  if (!existsSync(path.join(tinyDir, MANIFEST_FILE))) {
    log('converting the tiny fixture (once)...');
    await convertCheckpoint({ checkpointDir: TINY_FIXTURE, outDir: tinyDir, overwrite: true });
  }
  out.push(await describeModel('tiny', tinyDir));
  if (include1g) {
    const ckpt = path.join(ROOT, 'random-1g-checkpoint');
    const dir = path.join(ROOT, 'random-1g');
    if (!existsSync(path.join(ckpt, 'model.safetensors'))) {
      log('writing a random ~1 GB checkpoint (once)...');
      await writeRandomCheckpoint({ dir: ckpt, config: ONE_GB_CONFIG, seed: 7, dtype: 'F32' });
    }
    if (!existsSync(path.join(dir, MANIFEST_FILE))) {
      log('converting it (once)...');
      await convertCheckpoint({ checkpointDir: ckpt, outDir: dir, overwrite: true });
    }
    out.push(await describeModel('random-1g', dir));
  }
  return out;
}

async function describeModel(name: string, dir: string): Promise<BenchModel> {
  const manifest = await readManifest(dir);
  const largest = [...manifest.files].sort((a, b) => b.size - a.size)[0]!;
  return {
    name,
    dir,
    prefix: `${name}/${(await sha256Of(path.join(dir, MANIFEST_FILE))).slice(0, 12)}`,
    bytes: manifest.files.reduce((n, f) => n + f.size, 0),
    largestFile: largest.path,
  };
}

async function sha256Of(file: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

/** s3rver in its own process, so its CPU time is not the loader's. */
async function startS3rver(port: number): Promise<ChildProcess> {
  const dir = path.join(ROOT, 's3');
  await mkdir(dir, { recursive: true });
  const child = spawn(
    process.execPath,
    [
      'node_modules/s3rver/bin/s3rver.js',
      ...['-a', '127.0.0.1', '-p', String(port), '-d', dir, '-s', '--configure-bucket', BUCKET],
    ],
    { stdio: 'ignore' },
  );
  await waitForPort(port);
  return child;
}

async function ensureUploaded(client: S3Client, m: BenchModel): Promise<void> {
  const present = await client
    .send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${m.prefix}/${MANIFEST_FILE}` }))
    .then(
      () => true,
      () => false,
    );
  if (present) return;
  log(`uploading ${m.name} (${fmt(m.bytes / MB)} MB)...`);
  await uploadModel({ client, location: { bucket: BUCKET, prefix: m.prefix }, modelDir: m.dir });
}

/** One plain GET of the whole object, streamed to a file: the baseline. Bytes per second. */
async function singleStream(client: S3Client, key: string, target: string): Promise<number> {
  await rm(target, { force: true });
  const t0 = performance.now();
  const res = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  await pipeline(res.Body as Readable, createWriteStream(target, { highWaterMark: 1 << 20 }));
  const seconds = (performance.now() - t0) / 1000;
  return (res.ContentLength ?? 0) / seconds;
}

/** The service's loader into an empty cache; bytes per second of the fetch phase and of fetch + verify. */
async function loaderThroughput(
  client: S3Client,
  m: BenchModel,
  load: { concurrency: number; partBytes: number; stallTimeoutMs: number; retries: number },
): Promise<{ fetch: number; verified: number }> {
  const cacheDir = path.join(ROOT, 'loader-cache');
  await rm(cacheDir, { recursive: true, force: true });
  const report = await loadFromS3({
    client,
    location: { bucket: BUCKET, prefix: m.prefix },
    cacheDir,
    ...load,
    log: silentLogger,
  });
  await rm(cacheDir, { recursive: true, force: true });
  const { fetchMs, verifyMs } = report.phases;
  return {
    fetch: report.bytesFetched / (fetchMs / 1000),
    verified: report.bytesFetched / ((fetchMs + verifyMs) / 1000),
  };
}

interface ColdStart {
  boot: number;
  manifest: number;
  fetch: number;
  verify: number;
  session: number;
  firstToken: number;
  total: number;
}

/** Starts the real service and asks for tokens at once; phases in ms. */
async function coldStart(endpoint: string, m: BenchModel, cacheDir: string): Promise<ColdStart> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const t0 = performance.now();
  const child = spawn(process.execPath, ['gpu-function/src/main.ts'], {
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      GPU_HMAC_SECRET: SECRET,
      MODEL_URI: `s3://${BUCKET}/${m.prefix}`,
      S3_ENDPOINT: endpoint,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      MODEL_CACHE_DIR: cacheDir,
      IDLE_TIMEOUT_S: '0',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const events = new Map<string, number>();
  const lines = createInterface({ input: child.stdout! });
  const listening = new Promise<void>((resolve) => {
    lines.on('line', (line) => {
      try {
        const e = JSON.parse(line) as { event: string };
        events.set(e.event, performance.now());
        if (e.event === 'listening') resolve();
      } catch {
        // not a log line
      }
    });
  });
  try {
    await listening;
    const tListen = performance.now();
    const body = new TextEncoder().encode(JSON.stringify({ prompt_ids: [5, 6, 7], max_new_tokens: 8 }));
    const res = await fetch(`http://127.0.0.1:${port}/v1/generate`, {
      method: 'POST',
      body,
      headers: await signRequest(SECRET, 'POST', '/v1/generate', body),
    });
    let tFirst = 0;
    for await (const f of readFrames<GenerateFrame>(res.body!)) {
      if (f.type === 'tokens' && !tFirst) tFirst = performance.now();
      if (f.type === 'done' && f.finish_reason === 'error') throw new Error(f.error?.message);
    }
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const phase = (name: string) =>
      1000 * Number(new RegExp(`gpu_load_phase_seconds\\{phase="${name}"\\} (\\S+)`).exec(text)?.[1] ?? 0);
    const ready = events.get('model.ready') ?? tFirst;
    return {
      boot: tListen - t0,
      manifest: phase('manifest'),
      fetch: phase('fetch'),
      verify: phase('verify'),
      session: phase('session'),
      firstToken: tFirst - ready,
      total: tFirst - t0,
    };
  } finally {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
}

function printColdStarts(rows: [string, ColdStart][]): void {
  const head = ['', 'boot', 'manifest', 'fetch', 'verify', 'session', '1st token', 'other', 'total'];
  console.log(head.map((h, i) => (i === 0 ? h.padEnd(22) : h.padStart(10))).join(''));
  for (const [name, c] of rows) {
    const phases = [c.boot, c.manifest, c.fetch, c.verify, c.session, c.firstToken];
    const cells = [...phases, c.total - phases.reduce((a, b) => a + b, 0), c.total];
    console.log(name.padEnd(22) + cells.map((x) => `${fmt(x, 0)} ms`.padStart(10)).join(''));
  }
  console.log('  (boot: process start to listening; session: engine worker start and onnxruntime session;');
  console.log(
    '   1st token: model ready to the first token frame; other: loading the storage SDK, the request)',
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: 'string', default: '3' }, 'skip-1g': { type: 'boolean', default: false } },
  });
  const rounds = Math.max(1, Number(values.rounds));
  await mkdir(ROOT, { recursive: true });
  const models = await prepareModels(!values['skip-1g']);
  const port = 19000 + Math.floor(Math.random() * 1000);
  const s3rver = await startS3rver(port);
  const endpoint = `http://127.0.0.1:${port}`;
  const client = createS3Client(
    { endpoint, region: 'us-east-1', ...CREDENTIALS, sessionToken: undefined },
    { maxSockets: 16 },
  );
  try {
    for (const m of models) await ensureUploaded(client, m);
    const defaults = readSettings({}).config.load;
    const big = models.at(-1)!;

    console.log(`weight-load throughput: ${big.name} (${fmt(big.bytes / MB)} MB), s3rver on loopback`);
    const variants = [
      {
        label: `loader ${defaults.concurrency} x ${defaults.partBytes / 2 ** 20} MiB (defaults)`,
        load: defaults,
      },
      { label: 'loader 1 x 16 MiB', load: { ...defaults, concurrency: 1 } },
      { label: 'loader 4 x 16 MiB', load: { ...defaults, concurrency: 4 } },
    ];
    // Each loader run is paired with a single-stream run just before it, so both see the same
    // machine load; the ratios are per pair, the figures are medians over the rounds.
    const runs = variants.map(() => ({
      single: [] as number[],
      fetch: [] as number[],
      verified: [] as number[],
    }));
    const target = path.join(ROOT, 'single-stream.bin');
    const largestKey = `${big.prefix}/${big.largestFile}`;
    for (let r = 0; r < rounds; r++) {
      for (const [i, v] of variants.entries()) {
        const single = await singleStream(client, largestKey, target);
        const x = await loaderThroughput(client, big, v.load);
        runs[i]!.single.push(single);
        runs[i]!.fetch.push(x.fetch);
        runs[i]!.verified.push(x.verified);
      }
    }
    await rm(target, { force: true });
    const median = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      const m = s.length >> 1;
      return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
    };
    const ratio = (xs: number[], ys: number[]) => median(xs.map((x, k) => x / ys[k]!));
    const mbs = (x: number) => `${fmt(x / MB).padStart(5)} MB/s`;
    const pct = (x: number) => `${fmt(100 * x, 0)}%`.padStart(9);
    console.log(
      `  ${''.padEnd(30)} ${'single'.padStart(10)} ${'fetch'.padStart(10)} ${'ratio'.padStart(9)} ${'+verify'.padStart(10)} ${'ratio'.padStart(9)}`,
    );
    for (const [i, v] of variants.entries()) {
      const run = runs[i]!;
      console.log(
        `  ${v.label.padEnd(30)} ${mbs(median(run.single))} ${mbs(median(run.fetch))} ${pct(ratio(run.fetch, run.single))} ${mbs(median(run.verified))} ${pct(ratio(run.verified, run.single))}`,
      );
    }
    console.log(
      `  (medians of ${rounds} rounds; single: one plain GET of the largest file, run just before each`,
    );
    console.log('   loader run; fetch: bytes on disk / download time; +verify: until every SHA-256 matched;');
    console.log('   the loader hashes alongside the download, the single stream does not hash)');
    console.log('');

    console.log('cold start of the service process, process start to first token:');
    const rows: [string, ColdStart][] = [];
    for (const m of models) {
      const cacheDir = path.join(ROOT, `service-cache-${m.name}`);
      await rm(cacheDir, { recursive: true, force: true });
      rows.push([`${m.name} cold`, await coldStart(endpoint, m, cacheDir)]);
      rows.push([`${m.name} warm (cache)`, await coldStart(endpoint, m, cacheDir)]);
      await rm(cacheDir, { recursive: true, force: true });
    }
    printColdStarts(rows);
  } finally {
    client.destroy();
    s3rver.kill('SIGKILL');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:load failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
