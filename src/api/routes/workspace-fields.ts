/**
 * Fields of create and update bodies the SDK, CLI and MCP send beside
 * `config`: the image a create may leave out (the operator's default),
 * `logo` (a URL shown with the workspace) and `auto_stop_seconds` (a plain
 * stop after that long without activity; control/workspaces/idle.ts). They
 * are checked here and land in `config`, where the one update path stores
 * them, so a field sent is a field kept.
 */
import { ValidationFailed } from '../../core/errors.ts';
import type { Json } from '../parse.ts';

export const DEFAULT_IMAGE = 'debian-12';
const MAX_AUTO_STOP_SECONDS = 30 * 86_400;

function logo(v: unknown): string | null {
  if (v === null || v === '') return null;
  if (typeof v !== 'string' || v.length > 2048) throw new ValidationFailed('logo', 'logo must be a URL of at most 2048 characters, or null to clear it');
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ValidationFailed('logo', 'logo must be an absolute http(s) URL');
  }
  // Shown by consoles as an <img>: no javascript:, data: or file: URLs.
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new ValidationFailed('logo', 'logo must be an http(s) URL');
  return v;
}

function autoStop(v: unknown, minSeconds: number): number | null {
  if (v === null || v === 0) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ValidationFailed('auto_stop_seconds', 'auto_stop_seconds must be a whole number of seconds (0 or null: off)');
  if (v < minSeconds || v > MAX_AUTO_STOP_SECONDS) throw new ValidationFailed('auto_stop_seconds', `auto_stop_seconds must be between ${minSeconds} and ${MAX_AUTO_STOP_SECONDS} (or 0: off)`);
  return v;
}

/** The body with `logo` and `auto_stop_seconds` (top level or in config) checked and moved into config; a create gets the default image. */
export function normalizeWorkspaceBody(body: Json, opts: { create: boolean; defaultImage: string; minIdleSeconds: number }): Json {
  const out: Json = { ...body };
  if (body.config !== undefined && (typeof body.config !== 'object' || body.config === null || Array.isArray(body.config))) return out; // the parser names the error
  const config: Json = { ...(body.config as Json | undefined) };
  for (const key of ['logo', 'auto_stop_seconds'] as const) {
    const v = body[key] !== undefined ? body[key] : config[key];
    delete out[key];
    if (v === undefined) continue;
    config[key] = key === 'logo' ? logo(v) : autoStop(v, opts.minIdleSeconds);
  }
  if (Object.keys(config).length || body.config !== undefined) out.config = config;
  if (opts.create && (body.image === undefined || body.image === null || body.image === '')) out.image = opts.defaultImage;
  return out;
}
