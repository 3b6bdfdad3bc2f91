// Reads the Cloud Run service definition (infra/cloudrun/gpu-function.service.yaml) into the few
// fields the checks and the cost estimate need, failing with the YAML path of whatever is missing.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const SERVICE_YAML_PATH = fileURLToPath(
  new URL('./cloudrun/gpu-function.service.yaml', import.meta.url),
);

export interface EnvEntry {
  name: string;
  /** A literal value, or undefined when it comes from Secret Manager. */
  value?: string;
  /** The Secret Manager secret it references, if any. */
  secretName?: string;
  secretVersion?: string;
}

export interface HttpProbe {
  path: string;
  port: number;
  initialDelaySeconds: number;
  periodSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
}

export interface ServiceDefinition {
  file: string;
  serviceAnnotations: Record<string, string>;
  revisionAnnotations: Record<string, string>;
  containerConcurrency: number;
  timeoutSeconds: number;
  nodeSelector: Record<string, string>;
  image: string;
  containerPort: number;
  limits: Record<string, string>;
  env: EnvEntry[];
  startupProbe: HttpProbe;
  livenessProbe?: HttpProbe;
  /** Every ${NAME} placeholder the deploy script has to fill in. */
  placeholders: string[];
}

type Json = Record<string, unknown>;

class Reader {
  readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  fail(path: string, what: string): never {
    throw new Error(`${this.file}: ${path} ${what}`);
  }

  object(v: unknown, path: string): Json {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, 'must be a mapping');
    return v as Json;
  }

  array(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, 'must be a list');
    return v;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== 'string')
      this.fail(path, `must be a string (quote numbers and booleans), got ${typeof v}`);
    return v;
  }

  number(v: unknown, path: string, fallback?: number): number {
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(path, 'must be a number');
    return v;
  }

  strings(v: unknown, path: string): Record<string, string> {
    if (v === undefined) return {};
    const o = this.object(v, path);
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, this.string(x, `${path}.${k}`)]));
  }

  probe(v: unknown, path: string): HttpProbe {
    const p = this.object(v, path);
    const http = this.object(p.httpGet, `${path}.httpGet`);
    return {
      path: this.string(http.path, `${path}.httpGet.path`),
      port: this.number(http.port, `${path}.httpGet.port`),
      // Cloud Run's defaults for omitted fields.
      initialDelaySeconds: this.number(p.initialDelaySeconds, `${path}.initialDelaySeconds`, 0),
      periodSeconds: this.number(p.periodSeconds, `${path}.periodSeconds`, 10),
      timeoutSeconds: this.number(p.timeoutSeconds, `${path}.timeoutSeconds`, 1),
      failureThreshold: this.number(p.failureThreshold, `${path}.failureThreshold`, 3),
    };
  }

  envEntry(v: unknown, path: string): EnvEntry {
    const e = this.object(v, path);
    const name = this.string(e.name, `${path}.name`);
    if (e.valueFrom !== undefined) {
      const from = this.object(e.valueFrom, `${path}.valueFrom`);
      const ref = this.object(from.secretKeyRef, `${path}.valueFrom.secretKeyRef`);
      return {
        name,
        secretName: this.string(ref.name, `${path}.valueFrom.secretKeyRef.name`),
        secretVersion: this.string(ref.key, `${path}.valueFrom.secretKeyRef.key`),
      };
    }
    return { name, value: this.string(e.value, `${path}.value`) };
  }
}

export function parseServiceDefinition(text: string, file: string): ServiceDefinition {
  const r = new Reader(file);
  const root = r.object(parse(text), '(document)');
  if (root.apiVersion !== 'serving.knative.dev/v1' || root.kind !== 'Service') {
    r.fail('apiVersion/kind', 'must be serving.knative.dev/v1 Service');
  }
  const metadata = r.object(root.metadata, 'metadata');
  const template = r.object(r.object(root.spec, 'spec').template, 'spec.template');
  const revision = r.object(template.spec, 'spec.template.spec');
  const containers = r.array(revision.containers, 'spec.template.spec.containers');
  if (containers.length !== 1) r.fail('spec.template.spec.containers', 'must hold exactly one container');
  const cpath = 'spec.template.spec.containers[0]';
  const c = r.object(containers[0], cpath);
  const ports = r.array(c.ports, `${cpath}.ports`);
  const port = r.object(ports[0], `${cpath}.ports[0]`);
  const resources = r.object(c.resources, `${cpath}.resources`);
  const env = r.array(c.env ?? [], `${cpath}.env`).map((e, i) => r.envEntry(e, `${cpath}.env[${i}]`));
  return {
    file,
    serviceAnnotations: r.strings(metadata.annotations, 'metadata.annotations'),
    revisionAnnotations: r.strings(
      r.object(template.metadata, 'spec.template.metadata').annotations,
      'spec.template.metadata.annotations',
    ),
    containerConcurrency: r.number(revision.containerConcurrency, 'spec.template.spec.containerConcurrency'),
    timeoutSeconds: r.number(revision.timeoutSeconds, 'spec.template.spec.timeoutSeconds'),
    nodeSelector: r.strings(revision.nodeSelector, 'spec.template.spec.nodeSelector'),
    image: r.string(c.image, `${cpath}.image`),
    containerPort: r.number(port.containerPort, `${cpath}.ports[0].containerPort`),
    limits: r.strings(resources.limits, `${cpath}.resources.limits`),
    env,
    startupProbe: r.probe(c.startupProbe, `${cpath}.startupProbe`),
    ...(c.livenessProbe !== undefined
      ? { livenessProbe: r.probe(c.livenessProbe, `${cpath}.livenessProbe`) }
      : {}),
    placeholders: [...new Set([...text.matchAll(/\$\{([A-Z0-9_]+)\}/g)].map((m) => m[1]!))].sort(),
  };
}

export function loadServiceDefinition(file = SERVICE_YAML_PATH): ServiceDefinition {
  return parseServiceDefinition(readFileSync(file, 'utf8'), file);
}

/** Literal env values by name (secret references are left out). */
export function literalEnv(def: ServiceDefinition): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of def.env) if (e.value !== undefined) out[e.name] = e.value;
  return out;
}

/** Fills every ${NAME} placeholder from `values`; names without a value are all reported at once. */
export function renderServiceDefinition(text: string, values: Record<string, string | undefined>): string {
  const missing = new Set<string>();
  const out = text.replace(/\$\{([A-Z0-9_]+)\}/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined || v === '') missing.add(name);
    return v ?? '';
  });
  if (missing.size > 0)
    throw new Error(`set these for the service definition: ${[...missing].sort().join(', ')}`);
  return out;
}

// `node infra/service-definition.ts secrets`: "<secret name> <env name>" per Secret Manager
// reference, for the deploy script; `... render`: the definition with placeholders filled in
// from the environment, on stdout.
function main(argv: string[]): number {
  const text = readFileSync(SERVICE_YAML_PATH, 'utf8');
  const def = parseServiceDefinition(text, SERVICE_YAML_PATH);
  if (argv[0] === 'secrets' && argv.length === 1) {
    for (const e of def.env) if (e.secretName) process.stdout.write(`${e.secretName} ${e.name}\n`);
    return 0;
  }
  if (argv[0] === 'render' && argv.length === 1) {
    const rendered = renderServiceDefinition(text, process.env);
    parseServiceDefinition(rendered, `${SERVICE_YAML_PATH} (rendered)`);
    process.stdout.write(rendered);
    return 0;
  }
  process.stderr.write('usage: node infra/service-definition.ts secrets|render\n');
  return 2;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
