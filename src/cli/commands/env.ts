/**
 * `hearth env` — the shell exports that point the official `oblien` CLI,
 * MCP server and SDK at this Hearth, for `eval "$(hearth env)"`:
 *   - OBLIEN_BASE_URL: the control plane (the CLI and MCP read it);
 *   - OBLIEN_CLIENT_ID / OBLIEN_CLIENT_SECRET: the admin API key hearthd
 *     wrote at its first start (or --client-id/--client-secret, or --token
 *     for a scoped token as OBLIEN_TOKEN);
 *   - HEARTH_RUNTIME_URL and NODE_OPTIONS=--import <repo>/sdk/preload.mjs:
 *     the SDK builds its data-plane client for Oblien's fixed runtime
 *     origin, and the preload rewrites that origin to Hearth's gateway, so
 *     `oblien exec`, `files`, `terminal`… reach the workspace too.
 * Values are single-quoted for POSIX shells; --json prints them as an object.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFlags } from '../args/parse.ts';
import { ArgError } from '../args/listen.ts';

const USAGE = 'usage: hearth env [--data-dir DIR] [--client-id ID --client-secret SECRET | --token TOKEN] [--json]\n  eval "$(hearth env)"   # then: oblien ws list, oblien exec <id> -- uname -a';

/** The repo's data-plane preload (sdk/preload.mjs), next to src/. */
export const PRELOAD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'sdk', 'preload.mjs');

/** POSIX single-quoting: safe for any value. */
export function shellQuote(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

/** The variables, pure: NODE_OPTIONS keeps what the caller had and adds the preload once. */
export function envVars(o: { api: string; runtime: string; clientId?: string; clientSecret?: string; token?: string; nodeOptions?: string; preload?: string }): Record<string, string> {
  const preload = `--import ${o.preload ?? PRELOAD}`;
  const prior = (o.nodeOptions ?? '').trim();
  const out: Record<string, string> = { OBLIEN_BASE_URL: o.api, HEARTH_RUNTIME_URL: o.runtime, NODE_OPTIONS: prior.includes(preload) ? prior : [prior, preload].filter(Boolean).join(' ') };
  if (o.token) out.OBLIEN_TOKEN = o.token;
  else if (o.clientId && o.clientSecret) { out.OBLIEN_CLIENT_ID = o.clientId; out.OBLIEN_CLIENT_SECRET = o.clientSecret; }
  return out;
}

export async function envCommand(argv: string[]): Promise<number> {
  const f = parseFlags(argv, { 'data-dir': 'string', 'client-id': 'string', 'client-secret': 'string', token: 'string', json: 'boolean' }, USAGE);
  const dataDir = path.resolve(String(f['data-dir'] ?? '/var/lib/hearth/data'));
  const endpoints = await fs.readFile(path.join(dataDir, 'endpoints.json'), 'utf8').then((t) => JSON.parse(t) as { api: string; runtime: string }, () => null);
  if (!endpoints) throw new ArgError(`no ${path.join(dataDir, 'endpoints.json')}: is hearth serve running with --data-dir ${dataDir}?`, USAGE);
  let clientId = f['client-id'] as string | undefined;
  let clientSecret = f['client-secret'] as string | undefined;
  const token = f.token as string | undefined;
  if (!token && !(clientId && clientSecret)) {
    const cred = await fs.readFile(path.join(dataDir, 'credentials.json'), 'utf8').then((t) => JSON.parse(t) as { clientId: string; clientSecret: string }, () => null);
    if (!cred) throw new ArgError(`no API key: pass --client-id and --client-secret (or --token); ${path.join(dataDir, 'credentials.json')} is not readable`, USAGE);
    clientId = cred.clientId;
    clientSecret = cred.clientSecret;
  }
  const vars = envVars({ api: endpoints.api, runtime: endpoints.runtime, clientId, clientSecret, token, nodeOptions: process.env.NODE_OPTIONS });
  if (f.json) process.stdout.write(JSON.stringify(vars, null, 2) + '\n');
  else process.stdout.write(Object.entries(vars).map(([k, v]) => `export ${k}=${shellQuote(v)}`).join('\n') + '\n');
  return 0;
}
