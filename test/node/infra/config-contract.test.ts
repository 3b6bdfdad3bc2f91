// The configuration contract: the settings declared once in shared/src/config.ts are the only
// variables the container image, the Cloud Run service and the Worker deployment set, every
// required one is set, and secrets only ever come from a secret store.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { experimental_readRawConfig } from 'wrangler';
import { literalEnv, loadServiceDefinition } from '../../../infra/service-definition.ts';
import {
  EDGE_SETTINGS,
  GPU_FUNCTION_SETTINGS,
  loadSettings,
  type SettingsSpec,
} from '../../../shared/src/config.ts';
import { envAssignments, parseDockerfile } from './dockerfile-parser.ts';
import { FILES, repoPath } from './paths.ts';

const service = loadServiceDefinition();
const dockerfile = parseDockerfile(readFileSync(repoPath(FILES.dockerfile), 'utf8'));

/** Every ENV the image sets, with the stage it is in. */
const imageEnv = dockerfile.stages.flatMap((stage, i) =>
  stage.instructions
    .filter((ins) => ins.keyword === 'ENV')
    .flatMap((ins) =>
      envAssignments(ins.args).map(([name, value]) => ({ name, value, stage: i, line: ins.line })),
    ),
);
const runtimeEnv = Object.fromEntries(
  imageEnv.filter((e) => e.stage === dockerfile.stages.length - 1).map((e) => [e.name, e.value]),
);

const required = (spec: SettingsSpec) =>
  Object.entries(spec)
    .filter(([, s]) => s.default === undefined && !s.optional)
    .map(([name]) => name);
const secrets = (spec: SettingsSpec) =>
  Object.entries(spec)
    .filter(([, s]) => s.secret)
    .map(([name]) => name);

// Optional in code (development runs without them), needed by a real deployment: without them
// the function serves nothing (no signature secret, no model) or reads the wrong storage.
const GPU_DEPLOYMENT_ESSENTIALS = [
  'GPU_HMAC_SECRET',
  'MODEL_URI',
  'S3_ENDPOINT',
  'S3_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
];

// Cloud Run sets these itself and refuses a service that sets them.
const CLOUD_RUN_RESERVED = ['PORT', 'K_SERVICE', 'K_REVISION', 'K_CONFIGURATION'];

describe('GPU function: image and service definition against shared/src/config.ts', () => {
  it('sets only declared variables', () => {
    const undeclared = [
      ...service.env
        .filter((e) => !(e.name in GPU_FUNCTION_SETTINGS))
        .map((e) => `${e.name} (set in ${FILES.service})`),
      ...imageEnv
        .filter((e) => !(e.name in GPU_FUNCTION_SETTINGS))
        .map((e) => `${e.name} (ENV at ${FILES.dockerfile}:${e.line})`),
    ];
    expect(undeclared, `not declared in GPU_FUNCTION_SETTINGS of ${FILES.config}`).toEqual([]);
  });

  it('sets every required setting and every deployment essential', () => {
    const set = new Set([...service.env.map((e) => e.name), ...Object.keys(runtimeEnv)]);
    const missing = [...required(GPU_FUNCTION_SETTINGS), ...GPU_DEPLOYMENT_ESSENTIALS]
      .filter((name) => !set.has(name))
      .map((name) => `${name} (set it in ${FILES.service} or as ENV in ${FILES.dockerfile})`);
    expect(missing, 'settings a deployment must set').toEqual([]);
    for (const name of GPU_DEPLOYMENT_ESSENTIALS) expect(GPU_FUNCTION_SETTINGS).toHaveProperty(name);
  });

  it('takes secrets from Secret Manager, never from a literal value or the image', () => {
    const secretNames = new Set(secrets(GPU_FUNCTION_SETTINGS));
    const literalSecrets = service.env
      .filter((e) => secretNames.has(e.name) && e.secretName === undefined)
      .map((e) => `${e.name} (literal value in ${FILES.service}; use valueFrom.secretKeyRef)`);
    const imageSecrets = imageEnv
      .filter((e) => secretNames.has(e.name))
      .map((e) => `${e.name} (ENV at ${FILES.dockerfile}:${e.line}; images are not secret)`);
    expect([...literalSecrets, ...imageSecrets], 'secrets outside Secret Manager').toEqual([]);
    const argSecrets = dockerfile.stages
      .flatMap((s) => s.instructions)
      .filter((ins) => ins.keyword === 'ARG' && secretNames.has(ins.args.split('=')[0]!.trim()));
    expect(argSecrets.map((a) => `ARG at ${FILES.dockerfile}:${a.line}`)).toEqual([]);
    for (const e of service.env.filter((x) => x.secretName)) {
      expect(e.secretVersion, `${e.name} in ${FILES.service}: pin a version or use 'latest'`).toMatch(
        /^(latest|\d+)$/,
      );
    }
    const secretRefs = service.env.flatMap((e) => (e.secretName ? [e.secretName] : []));
    expect(new Set(secretRefs).size, `${FILES.service}: one Secret Manager secret per variable`).toBe(
      secretRefs.length,
    );
  });

  it('leaves the variables Cloud Run reserves to Cloud Run, and listens where Cloud Run sends traffic', () => {
    const reserved = service.env.filter((e) => CLOUD_RUN_RESERVED.includes(e.name)).map((e) => e.name);
    expect(reserved, `${FILES.service} sets variables Cloud Run reserves`).toEqual([]);
    // Cloud Run sets PORT to the container port; other platforms use the image's PORT.
    expect(
      String(service.containerPort),
      `containerPort in ${FILES.service} vs ENV PORT in ${FILES.dockerfile}`,
    ).toBe(runtimeEnv.PORT);
  });

  it("has values the GPU function's own settings validation accepts", async () => {
    // What the process sees on Cloud Run: the image's ENV, the service's literals, Cloud Run's
    // PORT, and the secrets (placeholder values here; their content is not validated).
    const env: Record<string, string> = {
      ...runtimeEnv,
      ...literalEnv(service),
      PORT: String(service.containerPort),
    };
    for (const e of service.env)
      if (e.secretName) env[e.name] = 'secret-from-secret-manager-of-32-bytes-or-more';
    expect(() => loadSettings(GPU_FUNCTION_SETTINGS, env)).not.toThrow();
    const settings = (await import('../../../gpu-function/src/settings.ts')) as {
      readSettings?: (env: Record<string, string>) => unknown;
    };
    expect(typeof settings.readSettings, 'gpu-function/src/settings.ts exports readSettings').toBe(
      'function',
    );
    expect(() => settings.readSettings!(env)).not.toThrow();
  });
});

describe('edge: wrangler.toml and the Worker deployment against shared/src/config.ts', () => {
  const { rawConfig } = experimental_readRawConfig({ config: repoPath(FILES.wrangler) });
  const vars = Object.keys(rawConfig.vars ?? {});
  const script = readFileSync(repoPath(FILES.cloudflareScript), 'utf8');
  const deployVars = [...script.matchAll(/--var "([A-Z0-9_]+):/g)].map((m) => m[1]!);

  it('sets only declared variables', () => {
    const undeclared = [
      ...vars.filter((v) => !(v in EDGE_SETTINGS)).map((v) => `${v} ([vars] in ${FILES.wrangler})`),
      ...deployVars
        .filter((v) => !(v in EDGE_SETTINGS))
        .map((v) => `${v} (--var in ${FILES.cloudflareScript})`),
    ];
    expect(undeclared, `not declared in EDGE_SETTINGS of ${FILES.config}`).toEqual([]);
    expect(deployVars, `${FILES.cloudflareScript} must point the Worker at the GPU function`).toContain(
      'GPU_FUNCTION_URL',
    );
  });

  it('keeps secrets out of [vars] and sets every required setting', () => {
    const secretNames = secrets(EDGE_SETTINGS);
    const exposed = vars.filter((v) => secretNames.includes(v));
    expect(exposed, `${FILES.wrangler} [vars] are plain text; use a Worker secret`).toEqual([]);
    // The deploy script uploads every secret setting (it reads the list from the code), so a
    // required secret is covered; a required plain setting needs a var.
    expect(script).toContain('infra/settings-table.ts --secrets edge');
    const missing = required(EDGE_SETTINGS).filter(
      (name) => !secretNames.includes(name) && !vars.includes(name) && !deployVars.includes(name),
    );
    expect(
      missing,
      `required edge settings neither in ${FILES.wrangler} [vars] nor deployed as --var`,
    ).toEqual([]);
  });

  it('lets the Worker hear a client hang up (request.signal), so it cancels and settles', () => {
    // test/edge/hang-up.test.ts shows what the flag does; this keeps it from being dropped.
    expect(rawConfig.compatibility_flags ?? []).toContain('enable_request_signal');
  });
});
