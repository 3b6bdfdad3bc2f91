import type { Env } from '../env.ts';
import type { KeyRecord } from '../keys/store.ts';
import type { KeyConfig } from './types.ts';

/** The limiter object of one key. */
export function limiterOf(env: Env, keyId: string) {
  return env.KEY_LIMITER.get(env.KEY_LIMITER.idFromName(keyId));
}

export const configOf = (record: KeyRecord): KeyConfig => ({
  limits: record.limits,
  disabled: record.disabled,
});
