// The deploy scripts' own logic, run for real: gcloud and docker are replaced by recorders that
// log their arguments and stdin (no cloud account here); the Worker deploy runs the real wrangler
// with --dry-run, which bundles and validates offline.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { literalEnv, parseServiceDefinition } from '../../../infra/service-definition.ts';
import { findTokenizerModel } from '../../../scripts/lib/tokenizer-asset.ts';
import { FILES, REPO_ROOT, repoPath } from './paths.ts';

const work = mkdtempSync(join(tmpdir(), 'deploy-scripts-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A copy of the files a clone of this tree would hold, with this checkout's node_modules. */
function freshClone(): string {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`);
  const clone = join(work, 'clone', 'jslm-serve');
  for (const file of listed.stdout.split('\0').filter(Boolean)) {
    const from = join(REPO_ROOT, file);
    // Deleted in this tree, or a link to node_modules where the checkout keeps it elsewhere.
    if (!existsSync(from) || file === 'node_modules' || file.startsWith('node_modules/')) continue;
    mkdirSync(dirname(join(clone, file)), { recursive: true });
    cpSync(from, join(clone, file));
  }
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(clone, 'node_modules'));
  return clone;
}

/** A stand-in command that appends its arguments to LOG, saves its stdin, and answers a few calls. */
function recorder(dir: string, name: string, body = ''): void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(
    file,
    `#!/usr/bin/env bash
printf '%s\\n' "${name} $*" >>"$CAPTURE/calls.log"
${body}
exit 0
`,
  );
  chmodSync(file, 0o755);
}

const bin = join(work, 'bin');
// gcloud: no secret exists yet; `secrets versions add NAME --data-file=-` keeps stdin per secret;
// `run services replace FILE` keeps FILE; `run services describe` prints a URL.
recorder(
  bin,
  'gcloud',
  `args=("$@")
for ((i = 0; i < \${#args[@]}; i++)); do
  case "\${args[i]} \${args[i+1]:-}" in
    "secrets describe") exit 1 ;;
    "service-accounts describe") exit 1 ;;
    "versions add") cat >"$CAPTURE/stdin-\${args[i+2]}" ;;
    "services replace") cp "\${args[i+2]}" "$CAPTURE/service.yaml" ;;
    "services describe") echo https://jslm-gpu-function-test.a.run.app ;;
    "keys create") printf '{"type":"service_account"}' >"\${args[i+2]}" ;;
  esac
done`,
);
recorder(bin, 'docker');

function run(script: string, args: string[], env: Record<string, string>, capture: string, root = REPO_ROOT) {
  mkdirSync(capture, { recursive: true });
  const r = spawnSync('bash', [join(root, script), ...args], {
    cwd: root,
    env: {
      PATH: `${bin}:${process.env.PATH}`,
      HOME: process.env.HOME ?? work,
      CAPTURE: capture,
      NODE: process.execPath,
      ...env,
    },
    input: '',
    encoding: 'utf8',
    timeout: 120_000,
  });
  const log = (() => {
    try {
      return readFileSync(join(capture, 'calls.log'), 'utf8');
    } catch {
      return '';
    }
  })();
  return { status: r.status, output: `${r.stdout}${r.stderr}`, log };
}

describe('infra shell scripts', () => {
  it('are valid bash', () => {
    for (const f of readdirSync(repoPath('infra')).filter((n) => n.endsWith('.sh'))) {
      const r = spawnSync('bash', ['-n', repoPath(`infra/${f}`)], { encoding: 'utf8' });
      expect(r.status, `${f}: ${r.stderr}`).toBe(0);
    }
  });
});

describe(`${FILES.gcpScript}`, () => {
  const base = { PROJECT_ID: 'proj-1', REGION: 'europe-west4', IMAGE_TAG: 'abc123' };

  it('deploys the rendered service definition with the image, account, region and model', () => {
    const capture = join(work, 'deploy');
    const r = run(
      FILES.gcpScript,
      ['deploy'],
      { ...base, R2_ACCOUNT_ID: 'acct42', MODEL_URI: 's3://jslm-weights/jslm-7b-fp16/v1' },
      capture,
    );
    expect(r.status, r.output).toBe(0);
    expect(r.log).toMatch(/^gcloud --project proj-1 run services replace \S+ --region europe-west4$/m);
    expect(r.output).toContain('https://jslm-gpu-function-test.a.run.app');
    const def = parseServiceDefinition(readFileSync(join(capture, 'service.yaml'), 'utf8'), 'rendered');
    expect(def.placeholders).toEqual([]);
    expect(def.image).toBe('europe-west4-docker.pkg.dev/proj-1/jslm/gpu-function:abc123');
    const env = literalEnv(def);
    expect(env.MODEL_URI).toBe('s3://jslm-weights/jslm-7b-fp16/v1');
    expect(env.S3_ENDPOINT).toBe('https://acct42.r2.cloudflarestorage.com');
    const yaml = readFileSync(join(capture, 'service.yaml'), 'utf8');
    expect(yaml).toContain('serviceAccountName: jslm-gpu-function@proj-1.iam.gserviceaccount.com');
    expect(yaml).toContain('cloud.googleapis.com/location: europe-west4');
    // Only the edge's invoker account may call it; public bindings from the past are removed.
    expect(r.log).toContain(
      'run services add-iam-policy-binding jslm-gpu-function --region europe-west4 --member serviceAccount:jslm-edge-invoker@proj-1.iam.gserviceaccount.com --role roles/run.invoker',
    );
    expect(r.log).not.toMatch(/add-iam-policy-binding .*--member all(Authenticated)?Users/);
    expect(r.log).toMatch(
      /remove-iam-policy-binding jslm-gpu-function .*--member allUsers --role roles\/run\.invoker/,
    );
  });

  it('sets up the invoker account without project roles, and writes its key readable only by you', () => {
    const capture = join(work, 'setup');
    const r = run(FILES.gcpScript, ['setup'], base, capture);
    expect(r.status, r.output).toBe(0);
    expect(r.log).toContain('iam service-accounts create jslm-edge-invoker');
    expect(r.log).not.toMatch(/projects add-iam-policy-binding/);

    const keyCapture = join(work, 'invoker-key');
    const file = join(work, 'invoker-key.json');
    const made = run(FILES.gcpScript, ['invoker-key'], { ...base, INVOKER_KEY_FILE: file }, keyCapture);
    expect(made.status, made.output).toBe(0);
    expect(made.log).toContain(
      `iam service-accounts keys create ${file} --iam-account jslm-edge-invoker@proj-1.iam.gserviceaccount.com`,
    );
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(made.output).toContain(`SECRET_GPU_INVOKER_KEY_FILE=${file}`);
    // Never overwrites a key file.
    const again = run(
      FILES.gcpScript,
      ['invoker-key'],
      { ...base, INVOKER_KEY_FILE: file },
      join(work, 'ik2'),
    );
    expect(again.status).not.toBe(0);
    expect(again.log).not.toContain('keys create');
  });

  it('refuses to deploy without the model location', () => {
    const r = run(
      FILES.gcpScript,
      ['deploy'],
      { ...base, R2_ACCOUNT_ID: 'acct42' },
      join(work, 'deploy-missing'),
    );
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('MODEL_URI');
    expect(r.log).not.toContain('services replace');
  });

  it('stores each secret through stdin only, from SECRET_<VARIABLE>, and grants the service account', () => {
    const capture = join(work, 'secrets');
    const values = {
      SECRET_GPU_HMAC_SECRET: 'hmac-value-1',
      SECRET_AWS_ACCESS_KEY_ID: 'r2-read-key-id',
      SECRET_AWS_SECRET_ACCESS_KEY: 'r2-read-secret',
    };
    // A shell's own AWS credentials must not be taken for the function's R2 key.
    const r = run(
      FILES.gcpScript,
      ['secrets'],
      { ...base, ...values, AWS_ACCESS_KEY_ID: 'my-own-aws-key' },
      capture,
    );
    expect(r.status, r.output).toBe(0);
    expect(readFileSync(join(capture, 'stdin-jslm-gpu-hmac-secret'), 'utf8')).toBe('hmac-value-1');
    expect(readFileSync(join(capture, 'stdin-jslm-r2-access-key-id'), 'utf8')).toBe('r2-read-key-id');
    expect(readFileSync(join(capture, 'stdin-jslm-r2-secret-access-key'), 'utf8')).toBe('r2-read-secret');
    for (const v of [...Object.values(values), 'my-own-aws-key']) {
      expect(r.log).not.toContain(v);
      expect(r.output).not.toContain(v);
    }
    for (const name of ['jslm-gpu-hmac-secret', 'jslm-r2-access-key-id', 'jslm-r2-secret-access-key']) {
      expect(r.log).toContain(`secrets create ${name}`);
      expect(r.log).toContain(
        `secrets add-iam-policy-binding ${name} --member serviceAccount:jslm-gpu-function@proj-1.iam.gserviceaccount.com --role roles/secretmanager.secretAccessor`,
      );
    }
  });

  it('builds for linux/amd64 and pushes, and refuses unpinned base images unless allowed', () => {
    const unpinned = readFileSync(repoPath(FILES.dockerfile), 'utf8').includes('# unpinned');
    if (unpinned) {
      const refused = run(FILES.gcpScript, ['build'], base, join(work, 'build-refused'));
      expect(refused.status).not.toBe(0);
      expect(refused.output).toContain('run infra/pin-images.sh');
      expect(refused.log).not.toContain('docker');
    }
    const r = run(FILES.gcpScript, ['build'], { ...base, ALLOW_UNPINNED: '1' }, join(work, 'build'));
    expect(r.status, r.output).toBe(0);
    expect(r.log).toContain(
      'docker buildx build --platform linux/amd64 -f infra/gpu-function.Dockerfile ' +
        '-t europe-west4-docker.pkg.dev/proj-1/jslm/gpu-function:abc123 --push .',
    );
  });
});

describe(`${FILES.cloudflareScript}`, () => {
  it('writes the new KV namespace id over the placeholder, once', () => {
    const capture = join(work, 'resources');
    const config = join(work, 'wrangler.test.toml');
    const placeholder = '0'.repeat(32);
    writeFileSync(config, `name = "x"\n\n[[kv_namespaces]]\nbinding = "API_KEYS"\nid = "${placeholder}"\n`);
    const id = 'f'.repeat(32);
    const fakeBin = join(work, 'bin-wrangler');
    recorder(
      fakeBin,
      'wrangler',
      `[[ "$1 $2 $3" == "r2 bucket info" ]] && exit 1
[[ "$1 $2 $3" == "kv namespace create" ]] && printf '{ "binding": "API_KEYS", "id": "${id}" }\\n'`,
    );
    const env = { WRANGLER: join(fakeBin, 'wrangler'), WRANGLER_CONFIG: config };
    const r = run(FILES.cloudflareScript, ['resources'], env, capture);
    expect(r.status, r.output).toBe(0);
    expect(r.log).toContain('wrangler r2 bucket create jslm-weights --location enam');
    const updated = readFileSync(config, 'utf8');
    expect(updated).toBe(`name = "x"\n\n[[kv_namespaces]]\nbinding = "API_KEYS"\nid = "${id}"\n`);
    const again = run(FILES.cloudflareScript, ['resources'], env, join(work, 'resources-again'));
    expect(again.status, again.output).toBe(0);
    expect(again.log).not.toContain('kv namespace create');
    expect(readFileSync(config, 'utf8')).toBe(updated);
  });

  it('deploys the Worker from a fresh clone with its secrets, the GPU function URL and the cold-start bound (dry run, real wrangler)', (ctx) => {
    let tokenizerModel: string;
    try {
      tokenizerModel = findTokenizerModel();
    } catch {
      return ctx.skip('no tokenizer model on this machine to compile (and no network to fetch one)');
    }
    // What a clone of this tree holds: tracked files and new ones not ignored; no .cache.
    const clone = freshClone();
    expect(existsSync(join(clone, '.cache'))).toBe(false);
    const capture = join(work, 'worker');
    const outdir = join(work, 'worker-dist');
    const secrets = {
      SECRET_GPU_HMAC_SECRET: 'hmac "quoted" value of at least 32 bytes',
      SECRET_ADMIN_TOKEN: 'admin-token-value',
    };
    // The invoker key comes from its file, as deploy-gpu-function.sh invoker-key writes it.
    const keyFile = join(work, 'worker-invoker-key.json');
    const keyMaterial = 'invoker-private-key-material';
    writeFileSync(keyFile, JSON.stringify({ type: 'service_account', private_key: keyMaterial }, null, 2));
    const r = run(
      FILES.cloudflareScript,
      ['deploy'],
      {
        ...secrets,
        SECRET_GPU_INVOKER_KEY_FILE: keyFile,
        GPU_FUNCTION_URL: 'https://jslm-gpu-function-test.a.run.app',
        DRY_RUN: '1',
        DRY_RUN_OUTDIR: outdir,
        CLOUDFLARE_CF_FETCH_ENABLED: 'false',
        WRANGLER_HIDE_BANNER: 'true',
        // A deployer's own copy of the tokenizer model (no ../shared beside a fresh clone).
        TOKENIZER_MODEL: tokenizerModel,
      },
      capture,
      clone,
    );
    expect(r.status, r.output).toBe(0);
    expect(existsSync(join(clone, '.cache/tokenizer/nerdstash-v1.bin'))).toBe(true);
    expect(readdirSync(outdir).some((f) => f.endsWith('.bin'))).toBe(true);
    for (const binding of [
      'GPU_HMAC_SECRET',
      'GPU_INVOKER_KEY',
      'ADMIN_TOKEN',
      'GPU_FUNCTION_URL',
      'COLD_START_TIMEOUT_S',
    ]) {
      expect(r.output).toContain(`env.${binding} `);
    }
    for (const v of [...Object.values(secrets), keyMaterial]) expect(r.output).not.toContain(v);
    expect(readdirSync(outdir)).toContain('index.js');
  }, 120_000);
});
