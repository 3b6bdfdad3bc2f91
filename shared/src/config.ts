// One source of truth for settings: every variable either service reads is declared here with
// its default and meaning. Code reads settings only through `loadSettings`; infra and docs are
// checked against these tables.

export interface SettingSpec {
  /** What it means, for the docs table. */
  doc: string;
  /** Default when unset; `undefined` means required (or optional when `optional` is set). */
  default?: string;
  optional?: boolean;
  /** Secrets are never logged or echoed. */
  secret?: boolean;
}

export type SettingsSpec = Record<string, SettingSpec>;

export type Settings<S extends SettingsSpec> = { readonly [K in keyof S]: string | undefined };

export class SettingsError extends Error {
  override name = 'SettingsError';
}

/** Reads every declared setting from `source`, applying defaults; fails on missing required ones. */
export function loadSettings<S extends SettingsSpec>(
  spec: S,
  source: Record<string, string | undefined>,
): Settings<S> {
  const out: Record<string, string | undefined> = {};
  const missing: string[] = [];
  for (const [name, s] of Object.entries(spec)) {
    const raw = source[name];
    const value = raw === undefined || raw === '' ? s.default : raw;
    if (value === undefined && !s.optional) missing.push(name);
    out[name] = value;
  }
  if (missing.length > 0) throw new SettingsError(`missing required setting(s): ${missing.join(', ')}`);
  return out as Settings<S>;
}

/** A copy safe to log: secrets are replaced by whether they are set. */
export function redactSettings<S extends SettingsSpec>(
  spec: S,
  settings: Settings<S>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, s] of Object.entries(spec)) {
    const v = settings[name as keyof S];
    out[name] = s.secret ? (v ? '(set)' : '(unset)') : (v ?? '(unset)');
  }
  return out;
}

/** Settings of the GPU function (a Node process; read from process.env). */
export const GPU_FUNCTION_SETTINGS = {
  HOST: { doc: 'Interface the HTTP server binds to.', default: '0.0.0.0' },
  PORT: { doc: 'HTTP port.', default: '8788' },
} satisfies SettingsSpec;

/** Settings of the edge worker (wrangler vars and secrets). */
export const EDGE_SETTINGS = {
  GPU_FUNCTION_URL: { doc: 'Base URL of the GPU function.', default: 'http://127.0.0.1:8788' },
} satisfies SettingsSpec;
