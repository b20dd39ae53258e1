/**
 * Typed reads of query strings and JSON fields. The SDK serialises booleans
 * as "true"/"false", numbers as decimal strings and arrays comma-joined
 * (spec §1.3); JSON callers may send real types. Both are accepted.
 */
import { validation } from './errors.ts';

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off', '']);

export function boolParam(v: unknown, field: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (TRUE.has(s)) return true;
    if (FALSE.has(s)) return false;
  }
  throw validation(field, `${field} must be a boolean`);
}

export function intParam(v: unknown, field: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n)) throw validation(field, `${field} must be an integer`);
  if (n < min || n > max) throw validation(field, `${field} must be between ${min} and ${max}`);
  return n;
}

/** Non-negative number of seconds (fractions allowed). */
export function secondsParam(v: unknown, field: string, max: number): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < 0 || n > max) throw validation(field, `${field} must be a number of seconds between 0 and ${max}`);
  return n;
}

export function stringParam(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw validation(field, `${field} must be a string`);
  return v;
}

export function requiredString(v: unknown, field: string): string {
  const s = stringParam(v, field);
  if (s === undefined || s.length === 0) throw validation(field, `${field} is required`);
  return s;
}

/** A list given as a JSON array or a comma-joined string. */
export function listParam(v: unknown, field: string): string[] | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (Array.isArray(v)) {
    if (!v.every((x) => typeof x === 'string')) throw validation(field, `${field} must be a list of strings`);
    return v.filter((x) => x.length > 0);
  }
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  throw validation(field, `${field} must be a list of strings`);
}

/** Query string accessor returning `undefined` for absent keys. */
export function q(query: URLSearchParams, key: string): string | undefined {
  const v = query.get(key);
  return v === null ? undefined : v;
}
