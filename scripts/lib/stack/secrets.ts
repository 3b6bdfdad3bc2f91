// The local stack's secrets, made on the first run and kept in git-ignored files so a second
// run (and the keys CLI) finds the same ones:
//   the edge's secrets (GPU_HMAC_SECRET, ADMIN_TOKEN) in a wrangler .dev.vars file;
//   the local API key in <data>/stack/local-api-key, unless LOCAL_API_KEY fixes it.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface EdgeSecrets {
  GPU_HMAC_SECRET: string;
  ADMIN_TOKEN: string;
}

/** What the edge's admin API accepts as a caller-chosen key. */
export const API_KEY_FORMAT = /^sk-jslm-[A-Za-z0-9_-]{32,128}$/;

const randomToken = () => randomBytes(32).toString('base64url');

/** KEY=value lines of a dotenv-style file (quotes around the value removed). */
export function parseDevVars(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) vars.set(m[1]!, m[2]!.replace(/^(['"])(.*)\1$/, '$2'));
  }
  return vars;
}

/**
 * Reads the edge's secrets from `file`, adding any that are missing (the rest of the file is
 * kept as it is). Returns them and the names it added.
 */
export function ensureDevVars(file: string): { secrets: EdgeSecrets; added: string[] } {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const vars = parseDevVars(text);
  const added: string[] = [];
  let extra = '';
  for (const name of ['GPU_HMAC_SECRET', 'ADMIN_TOKEN'] as const) {
    if (vars.get(name)) continue;
    const value = randomToken();
    vars.set(name, value);
    added.push(name);
    extra += `${name}=${value}\n`;
  }
  if (added.length > 0) {
    mkdirSync(path.dirname(file), { recursive: true });
    const header = text === '' ? '# Secrets of the local stack (npm start); never commit this file.\n' : '';
    const separator = text === '' || text.endsWith('\n') ? '' : '\n';
    writeFileSync(file, `${text}${separator}${header}${extra}`, { mode: 0o600 });
  }
  // `mode` applies only to a file writeFileSync creates: an existing one keeps its permissions,
  // so a file someone made world-readable is made private here, whether or not it changed.
  if (existsSync(file) && (statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  return {
    secrets: { GPU_HMAC_SECRET: vars.get('GPU_HMAC_SECRET')!, ADMIN_TOKEN: vars.get('ADMIN_TOKEN')! },
    added,
  };
}

/**
 * The local API key: `fromEnv` (LOCAL_API_KEY) when given, else the one kept under `dataDir`,
 * else a new one, kept there for the next run.
 */
export function localApiKey(dataDir: string, fromEnv: string | undefined): { key: string; source: string } {
  if (fromEnv) {
    if (!API_KEY_FORMAT.test(fromEnv)) {
      throw new Error(
        "LOCAL_API_KEY must be 'sk-jslm-' followed by 32 to 128 of A-Z a-z 0-9 _ - " +
          '(e.g. sk-jslm-$(openssl rand -hex 20))',
      );
    }
    return { key: fromEnv, source: 'LOCAL_API_KEY' };
  }
  const file = path.join(dataDir, 'stack', 'local-api-key');
  if (existsSync(file)) {
    const kept = readFileSync(file, 'utf8').trim();
    if (API_KEY_FORMAT.test(kept)) return { key: kept, source: file };
  }
  const key = `sk-jslm-${randomToken()}`;
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return { key, source: 'new' };
}
