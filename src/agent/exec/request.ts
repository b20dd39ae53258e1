/**
 * Parse and validate an exec request body (spec §22.5). The SDK sends only
 * `cmd`, `exec_mode`, `timeout_seconds`, `ttl_seconds`, `keep_logs`; `env`,
 * `cwd`/`working_dir` and `stdin` are Hearth extensions.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { validation } from '../../core/agent-protocol/errors.ts';
import { boolParam, secondsParam, stringParam } from '../../core/agent-protocol/params.ts';
import type { ExecMode } from './argv.ts';

export const DEFAULT_TTL_SECONDS = 300;
const MAX_TTL_SECONDS = 7 * 24 * 3600;
const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600;

export interface ExecSpec {
  cmd: string[];
  mode: ExecMode;
  timeoutSeconds?: number;
  ttlSeconds: number;
  keepLogs: boolean;
  env?: Record<string, string>;
  cwd?: string;
  /** Written to stdin, which is then closed (run) — extension. */
  stdin?: string;
}

function parseCmd(v: unknown): string[] {
  if (typeof v === 'string') {
    if (v.trim().length === 0) throw validation('cmd', 'cmd must not be empty');
    return [v];
  }
  if (!Array.isArray(v) || v.length === 0) throw validation('cmd', 'cmd must be a non-empty array of strings');
  if (!v.every((a) => typeof a === 'string')) throw validation('cmd', 'cmd must be an array of strings');
  if ((v[0] as string).length === 0) throw validation('cmd', 'cmd[0] must not be empty');
  if (v.some((a: string) => a.includes('\0'))) throw validation('cmd', 'cmd must not contain NUL bytes');
  return v as string[];
}

function parseMode(v: unknown): ExecMode {
  if (v === undefined || v === null || v === '') return 'auto';
  // The Swift SDK sends foreground/background: both mean "decide for me".
  if (v === 'foreground' || v === 'background') return 'auto';
  if (v === 'auto' || v === 'shell' || v === 'direct') return v;
  throw validation('exec_mode', "exec_mode must be one of 'auto', 'shell', 'direct'");
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function parseEnv(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  const out: Record<string, string> = {};
  if (Array.isArray(v)) {
    for (const item of v) {
      if (typeof item !== 'string' || !item.includes('=')) throw validation('env', 'env entries must be "KEY=VALUE" strings');
      const i = item.indexOf('=');
      out[item.slice(0, i)] = item.slice(i + 1);
    }
  } else if (typeof v === 'object') {
    for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
      if (val === null || val === undefined) continue;
      if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') {
        throw validation('env', `env.${k} must be a string`);
      }
      out[k] = String(val);
    }
  } else {
    throw validation('env', 'env must be an object or an array of "KEY=VALUE" strings');
  }
  for (const [k, val] of Object.entries(out)) {
    if (!ENV_NAME.test(k)) throw validation('env', `invalid environment variable name: ${JSON.stringify(k)}`);
    if (val.includes('\0')) throw validation('env', `env.${k} must not contain NUL bytes`);
  }
  return out;
}

function parseCwd(v: unknown): string | undefined {
  const raw = stringParam(v, 'cwd');
  if (raw === undefined || raw === '') return undefined;
  const dir = resolve('/', raw);
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw validation('cwd', `working directory does not exist: ${dir}`);
  }
  if (!isDir) throw validation('cwd', `working directory is not a directory: ${dir}`);
  return dir;
}

export function parseExecRequest(body: Record<string, unknown>): ExecSpec {
  const spec: ExecSpec = {
    cmd: parseCmd(body.cmd ?? body.command),
    mode: parseMode(body.exec_mode),
    ttlSeconds: secondsParam(body.ttl_seconds, 'ttl_seconds', MAX_TTL_SECONDS) ?? DEFAULT_TTL_SECONDS,
    keepLogs: boolParam(body.keep_logs, 'keep_logs') ?? true,
  };
  const timeout = secondsParam(body.timeout_seconds ?? body.timeout, 'timeout_seconds', MAX_TIMEOUT_SECONDS);
  if (timeout !== undefined && timeout > 0) spec.timeoutSeconds = timeout;
  const env = parseEnv(body.env);
  if (env) spec.env = env;
  const cwd = parseCwd(body.cwd ?? body.working_dir);
  if (cwd) spec.cwd = cwd;
  const stdin = stringParam(body.stdin, 'stdin');
  if (stdin !== undefined) spec.stdin = stdin;
  return spec;
}
