// `npm run -s cli -- keys <command>`: API keys through the edge's admin API (/admin/keys).
// Talks to the local stack by default; point it elsewhere with --url / EDGE_URL.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { promptSecret } from '../lib/prompt-secret.ts';

const DEFAULT_URL = 'http://127.0.0.1:8787';
const LIMIT_FLAGS = {
  'requests-per-minute': 'requests_per_minute',
  'tokens-per-minute': 'tokens_per_minute',
  'tokens-per-day': 'tokens_per_day',
  'tokens-per-month': 'tokens_per_month',
  'concurrent-requests': 'concurrent_requests',
} as const;

const USAGE = `usage: npm run -s cli -- keys <command> [options]

commands:
  create --name NAME [limits]        create a key; prints it once (store it then)
  list [--json]                      all keys (never the keys themselves)
  show ID                            one key with its current usage
  update ID [--name NAME] [limits] [--enable | --disable]
  revoke ID                          disable a key at once

limits (positive integers; a new key gets the edge's defaults for any left out):
  --requests-per-minute N  --tokens-per-minute N  --tokens-per-day N  --tokens-per-month N
  --concurrent-requests N

connection:
  --url URL            the edge (env EDGE_URL; default ${DEFAULT_URL})
  admin token          env ADMIN_TOKEN; else ADMIN_TOKEN from .dev.vars (the local stack's); else
                       asked for on the terminal. Never on the command line: it would show in the
                       process list and the shell's history.
`;

class UsageError extends Error {}

interface KeyView {
  id: string;
  name: string;
  hint: string;
  limits: Record<string, number>;
  created: number;
  disabled: boolean;
  key?: string;
  usage?: unknown;
}

/** ADMIN_TOKEN from a wrangler .dev.vars file (KEY=value lines, optional quotes). */
function adminTokenFromDevVars(file = path.resolve('.dev.vars')): string | undefined {
  if (!existsSync(file)) return undefined;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*ADMIN_TOKEN\s*=\s*(.*?)\s*$/.exec(line);
    if (m) return m[1]!.replace(/^(['"])(.*)\1$/, '$2');
  }
  return undefined;
}

function limitsFrom(values: Record<string, unknown>): Record<string, number> {
  const limits: Record<string, number> = {};
  for (const [flag, field] of Object.entries(LIMIT_FLAGS)) {
    const raw = values[flag];
    if (raw === undefined) continue;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`--${flag} must be a positive integer`);
    limits[field] = n;
  }
  return limits;
}

class AdminClient {
  private readonly base: string;
  private readonly token: string;
  constructor(base: string, token: string) {
    this.base = base.replace(/\/+$/, '');
    this.token = token;
  }

  async request<T>(method: string, route: string, body?: unknown): Promise<T> {
    const url = `${this.base}/admin${route}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch {
      throw new Error(
        `cannot reach the edge at ${this.base} (is it running? \`npm start\` for the local stack)`,
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`unexpected answer from ${url} (HTTP ${res.status}): ${text.slice(0, 200)}`);
    }
    if (!res.ok) {
      const message = (parsed as { error?: { message?: string } }).error?.message ?? text.slice(0, 200);
      throw new Error(`${message} (HTTP ${res.status})`);
    }
    return parsed as T;
  }
}

function table(keys: KeyView[]): string {
  const header = ['id', 'name', 'key', 'req/min', 'tok/min', 'tok/day', 'tok/month', 'created', 'status'];
  const rows = keys.map((k) => [
    k.id,
    k.name,
    k.hint,
    String(k.limits.requests_per_minute),
    String(k.limits.tokens_per_minute),
    String(k.limits.tokens_per_day),
    String(k.limits.tokens_per_month),
    new Date(k.created * 1000).toISOString().slice(0, 19).replace('T', ' '),
    k.disabled ? 'revoked' : 'active',
  ]);
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all
    .map((r) =>
      r
        .map((v, i) => v.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

async function dispatch(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      'admin-token': { type: 'string' },
      name: { type: 'string' },
      json: { type: 'boolean' },
      enable: { type: 'boolean' },
      disable: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      ...Object.fromEntries(Object.keys(LIMIT_FLAGS).map((f) => [f, { type: 'string' as const }])),
    },
  });
  const [command, id, ...extra] = positionals;
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return command || values.help ? 0 : 2;
  }
  if (values['admin-token'] !== undefined) {
    throw new UsageError(
      '--admin-token is not accepted (the process list would show it): set ADMIN_TOKEN, or leave it unset to be asked',
    );
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  const needsId = command === 'show' || command === 'update' || command === 'revoke';
  if (needsId && !id) throw new UsageError(`keys ${command} needs a key id (see \`keys list\`)`);
  if (!needsId && id) throw new UsageError(`unexpected argument '${id}'`);

  const token =
    process.env.ADMIN_TOKEN || adminTokenFromDevVars() || (await promptSecret('admin token (not shown): '));
  if (!token) {
    throw new UsageError(
      'no admin token: set ADMIN_TOKEN, add it to .dev.vars, or run in a terminal to be asked',
    );
  }
  const client = new AdminClient(values.url ?? process.env.EDGE_URL ?? DEFAULT_URL, token);
  const limits = limitsFrom(values);

  switch (command) {
    case 'create': {
      if (!values.name) throw new UsageError('keys create needs --name NAME');
      const created = await client.request<KeyView>('POST', '/keys', { name: values.name, limits });
      print(created);
      process.stderr.write('Store the key now: it is shown only this once.\n');
      return 0;
    }
    case 'list': {
      const { data } = await client.request<{ data: KeyView[] }>('GET', '/keys');
      process.stdout.write(values.json ? `${JSON.stringify(data, null, 2)}\n` : `${table(data)}\n`);
      return 0;
    }
    case 'show':
      print(await client.request<KeyView>('GET', `/keys/${encodeURIComponent(id!)}`));
      return 0;
    case 'update': {
      if (values.enable && values.disable) throw new UsageError('--enable and --disable exclude each other');
      const change: Record<string, unknown> = {};
      if (values.name !== undefined) change.name = values.name;
      if (Object.keys(limits).length > 0) change.limits = limits;
      if (values.enable || values.disable) change.disabled = Boolean(values.disable);
      if (Object.keys(change).length === 0) throw new UsageError('keys update: nothing to change');
      print(await client.request<KeyView>('PATCH', `/keys/${encodeURIComponent(id!)}`, change));
      return 0;
    }
    case 'revoke':
      print(await client.request<KeyView>('DELETE', `/keys/${encodeURIComponent(id!)}`));
      return 0;
    default:
      throw new UsageError(`unknown keys command '${command}'`);
  }
}

export async function run(args: string[]): Promise<number> {
  try {
    return await dispatch(args.slice(1));
  } catch (err) {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    if (usage) process.stderr.write('(see `npm run -s cli -- keys --help`)\n');
    return usage ? 2 : 1;
  }
}
