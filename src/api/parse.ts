/** Small request-parsing helpers shared by routes; they throw ValidationFailed. */
import { ValidationFailed } from '../core/errors.ts';

export type Json = Record<string, unknown>;

export function bodyObject(body: unknown): Json {
  if (body === undefined || body === null || body === '') return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new ValidationFailed('body', 'request body must be a JSON object');
  return body as Json;
}

export function queryInt(q: Json, key: string, dflt: number, min: number, max: number): number {
  const v = q[key];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new ValidationFailed(key, `${key} must be a whole number between ${min} and ${max}`);
  return n;
}

export function queryString(q: Json, key: string): string | undefined {
  const v = q[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function param(params: unknown, key: string): string {
  const v = (params as Json)[key];
  if (typeof v !== 'string' || v === '') throw new ValidationFailed(key, `${key} is required`);
  return decodeURIComponent(v);
}
