// The Cloud Run service definition parses and carries what scale-to-zero on an L4 needs.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { coldStartSeconds } from '../../../infra/cost-estimate.ts';
import {
  literalEnv,
  loadServiceDefinition,
  parseServiceDefinition,
  renderServiceDefinition,
} from '../../../infra/service-definition.ts';
import { EDGE_SETTINGS, GPU_FUNCTION_SETTINGS, type SettingSpec } from '../../../shared/src/config.ts';
import { FILES, repoPath } from './paths.ts';

const text = readFileSync(repoPath(FILES.service), 'utf8');
const def = loadServiceDefinition();
const env = literalEnv(def);
const setting = (name: keyof typeof GPU_FUNCTION_SETTINGS) =>
  env[name] ?? (GPU_FUNCTION_SETTINGS[name] as SettingSpec).default;

/** Cloud Run: a startup probe must succeed within failureThreshold x periodSeconds <= 240 s. */
const STARTUP_PROBE_CEILING_S = 240;
/** Cloud Run sends SIGKILL 10 s after SIGTERM. */
const SIGTERM_GRACE_S = 10;
/** Cloud Run keeps an idle instance for at most about 15 minutes. */
const CLOUD_RUN_IDLE_RETENTION_S = 900;
/** A full-length generation at a pessimistic decode rate for a 7B model on an L4. */
const LONGEST_GENERATION_S = 2048 / 10;

const gib = (quantity: string) => {
  const m = /^(\d+)Gi$/.exec(quantity);
  if (!m) throw new Error(`${FILES.service}: memory '${quantity}' is not in Gi`);
  return Number(m[1]);
};

describe(`Cloud Run service (${FILES.service})`, () => {
  it('scales to zero with a cost ceiling', () => {
    const a = def.revisionAnnotations;
    expect(a['autoscaling.knative.dev/minScale'], 'min instances').toBe('0');
    expect(def.serviceAnnotations['run.googleapis.com/minScale'] ?? '0', 'service-level min instances').toBe(
      '0',
    );
    const max = Number(a['autoscaling.knative.dev/maxScale']);
    expect(Number.isInteger(max), 'maxScale must be set: an unbounded GPU service is an unbounded bill').toBe(
      true,
    );
    expect(max).toBeGreaterThanOrEqual(1);
    expect(max).toBeLessThanOrEqual(10);
  });

  it('runs on one NVIDIA L4 with the CPU and memory Cloud Run requires and the weight cache needs', () => {
    expect(def.nodeSelector['run.googleapis.com/accelerator']).toBe('nvidia-l4');
    expect(def.limits['nvidia.com/gpu']).toBe('1');
    expect(Number(def.limits.cpu), 'L4 needs at least 4 vCPU').toBeGreaterThanOrEqual(4);
    // The container's disk is memory on Cloud Run: ~14 GB of weights plus the process.
    expect(
      gib(def.limits.memory ?? ''),
      'L4 needs >= 16 GiB; the in-memory weight cache needs more',
    ).toBeGreaterThanOrEqual(24);
    // GPUs are only offered with instance-based billing ("CPU always allocated").
    expect(def.revisionAnnotations['run.googleapis.com/cpu-throttling']).toBe('false');
    expect(def.revisionAnnotations['run.googleapis.com/gpu-zonal-redundancy-disabled']).toBe('true');
  });

  it('takes no more concurrent requests than the process queues', () => {
    expect(def.containerConcurrency).toBeGreaterThanOrEqual(1);
    expect(def.containerConcurrency).toBeLessThanOrEqual(Number(setting('QUEUE_MAX')));
  });

  it('gives a request time for a slow cold start plus the longest generation', () => {
    const slowest = coldStartSeconds('slow');
    expect(def.timeoutSeconds).toBeGreaterThanOrEqual(slowest + LONGEST_GENERATION_S);
    expect(def.timeoutSeconds, "Cloud Run's request timeout maximum").toBeLessThanOrEqual(3600);
  });

  it('probes startup on process liveness, within Cloud Run limits, and loads the weights at boot', () => {
    const p = def.startupProbe;
    // The weight load runs after the probe passes (requests wait in the process's queue with
    // heartbeats), so probing /readyz would cap the load at 240 s and fail slow cold starts.
    expect(p.path).toBe('/healthz');
    expect(p.port).toBe(def.containerPort);
    expect(p.failureThreshold * p.periodSeconds).toBeLessThanOrEqual(STARTUP_PROBE_CEILING_S);
    expect(
      p.failureThreshold * p.periodSeconds,
      'room for a slow image pull and Node start',
    ).toBeGreaterThanOrEqual(60);
    expect(p.timeoutSeconds).toBeLessThanOrEqual(p.periodSeconds);
    expect(def.livenessProbe?.path).toBe('/healthz');
    expect(setting('PRELOAD'), 'start the weight load when the instance boots').toBe('1');
  });

  it('stops in time: drains within the SIGTERM grace and exits after idling', () => {
    expect(Number(setting('DRAIN_TIMEOUT_S'))).toBeLessThan(SIGTERM_GRACE_S);
    const idle = Number(setting('IDLE_TIMEOUT_S'));
    expect(idle, 'self-exit shortens the billed idle tail').toBeGreaterThan(0);
    expect(idle).toBeLessThan(CLOUD_RUN_IDLE_RETENTION_S);
  });

  it('admits only authenticated callers: invoker IAM on (the edge holds a token), HMAC on top', () => {
    // Without IAM anyone could wake (and keep awake) an L4 with one unauthenticated request.
    for (const annotations of [def.serviceAnnotations, def.revisionAnnotations]) {
      expect(annotations['run.googleapis.com/invoker-iam-disabled'] ?? 'false').not.toBe('true');
    }
    expect(text).not.toMatch(/invoker-iam-disabled:\s*"?true/);
    // The edge runs on Cloudflare, outside Google's network: ingress stays open to the internet,
    // which is why IAM, not ingress, keeps others out.
    expect(def.serviceAnnotations['run.googleapis.com/ingress']).toBe('all');
    expect(def.env.find((e) => e.name === 'GPU_HMAC_SECRET')?.secretName).toBeTruthy();
    // The edge has the key to mint its ID tokens, as a secret.
    expect(EDGE_SETTINGS.GPU_INVOKER_KEY).toMatchObject({ secret: true });
  });

  it('renders with every placeholder filled, and names the ones left unset', () => {
    const values = Object.fromEntries(def.placeholders.map((p) => [p, `value-of-${p.toLowerCase()}`]));
    const rendered = renderServiceDefinition(text, values);
    expect(rendered).not.toMatch(/\$\{[A-Z0-9_]+\}/);
    const r = parseServiceDefinition(rendered, 'rendered');
    expect(r.image).toBe('value-of-image');
    expect(literalEnv(r).S3_ENDPOINT).toBe('https://value-of-r2_account_id.r2.cloudflarestorage.com');
    expect(() => renderServiceDefinition(text, { ...values, IMAGE: undefined, MODEL_URI: '' })).toThrow(
      'IMAGE, MODEL_URI',
    );
  });

  it('has every placeholder filled in by the deploy script', () => {
    const script = readFileSync(repoPath(FILES.gcpScript), 'utf8');
    for (const p of def.placeholders)
      expect(script, `${FILES.gcpScript} passes ${p}`).toMatch(new RegExp(`${p}="\\$${p}"`));
  });

  it('reports the YAML path of a malformed field', () => {
    const broken = text.replace('containerConcurrency: 32', 'containerConcurrency: many');
    expect(() => parseServiceDefinition(broken, 'x.yaml')).toThrow(
      'x.yaml: spec.template.spec.containerConcurrency must be a number',
    );
    const unquoted = text.replace('value: "300"', 'value: 300');
    expect(() => parseServiceDefinition(unquoted, 'x.yaml')).toThrow(/env\[\d+\]\.value must be a string/);
  });
});
