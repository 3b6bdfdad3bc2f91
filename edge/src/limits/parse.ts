import { badRequest } from '../../../shared/src/errors.ts';
import { shortName } from '../http/fields.ts';
import { type KeyLimits, LIMIT_NAMES } from './types.ts';

/** Validates a (partial) limits object from the admin API; every value a positive integer. */
export function parseLimits(value: unknown, param = 'limits'): Partial<KeyLimits> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value))
    throw badRequest(`'${param}' must be an object.`, param);
  const out: Partial<KeyLimits> = {};
  for (const [name, v] of Object.entries(value)) {
    if (!(LIMIT_NAMES as readonly string[]).includes(name)) {
      throw badRequest(
        `Unknown limit '${shortName(name)}'; known: ${LIMIT_NAMES.join(', ')}.`,
        `${param}.${shortName(name)}`,
      );
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw badRequest(`'${param}.${name}' must be a positive integer.`, `${param}.${name}`);
    }
    out[name as keyof KeyLimits] = v;
  }
  return out;
}
