// Small checks for request fields. Each throws a 400 naming the parameter.

import { badRequest } from '../../../shared/src/errors.ts';
import { preview } from '../../../shared/src/preview.ts';

export { preview };

/** A client-chosen name (a parameter, a key) shortened for a message. */
export const shortName = (name: string) => (name.length > 64 ? `${name.slice(0, 64)}…` : name);

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function requireObject(body: unknown): Record<string, unknown> {
  if (!isPlainObject(body)) throw badRequest('The request body must be a JSON object.');
  return body;
}

/** A lone surrogate (from a `\ud800` escape) cannot be encoded as UTF-8, so it cannot be tokenized. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function wellFormedString(v: unknown, param: string): string {
  if (typeof v !== 'string') throw badRequest(`'${param}' must be a string.`, param);
  if (LONE_SURROGATE.test(v)) {
    throw badRequest(`'${param}' contains a lone UTF-16 surrogate, which is not valid Unicode text.`, param);
  }
  return v;
}

export function optionalBoolean(body: Record<string, unknown>, param: string, fallback: boolean): boolean {
  const v = body[param];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw badRequest(`'${param}' must be a boolean.`, param);
  return v;
}

export function optionalNumber(
  body: Record<string, unknown>,
  param: string,
  range: { fallback: number; min: number; max: number; integer?: boolean; exclusiveMin?: boolean },
): number {
  const v = body[param];
  if (v === undefined || v === null) return range.fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw badRequest(`'${param}' must be a finite number; got ${preview(v)}.`, param);
  }
  if (range.integer && !Number.isInteger(v))
    throw badRequest(`'${param}' must be an integer; got ${v}.`, param);
  const tooSmall = range.exclusiveMin ? v <= range.min : v < range.min;
  if (tooSmall || v > range.max) {
    const low = range.exclusiveMin ? `(${range.min}` : `[${range.min}`;
    throw badRequest(`'${param}' must be in ${low}, ${range.max}]; got ${v}.`, param);
  }
  return v;
}

/** Rejects any key not in `known`, the way OpenAI words it. */
export function rejectUnknown(body: Record<string, unknown>, known: ReadonlySet<string>): void {
  for (const key of Object.keys(body)) {
    if (!known.has(key)) {
      throw badRequest(`Unrecognized request argument supplied: ${shortName(key)}`, shortName(key));
    }
  }
}
