/**
 * Registry policy and credentials: which registries Hearth may pull from,
 * over which scheme, with which credentials, and the parsing of
 * `WWW-Authenticate` challenges. Pure except `registryConfig()`, which reads
 * the environment and the credentials file.
 *
 * Environment (all optional):
 *   HEARTH_REGISTRY_MIRROR        base URL used for Docker Hub names (e.g. http://127.0.0.1:5000)
 *   HEARTH_DOCKER_HUB=1           allow unqualified names (`python:3.12`) to be pulled from Docker Hub
 *   HEARTH_INSECURE_REGISTRIES    comma-separated hosts spoken to over plain HTTP (and allowed on private addresses)
 *   HEARTH_PRIVATE_REGISTRIES     comma-separated host[:port] allowed on loopback, link-local or private addresses
 *                                 (nothing else is: see oci/outbound.ts); a listed loopback registry is spoken to over HTTP
 *   HEARTH_REGISTRY_AUTH_FILE     credentials in Docker's config.json format (`auths.<host>.auth` = base64 user:pass)
 *   HEARTH_REGISTRY_TIMEOUT_MS    idle timeout of a registry request (default 30000)
 *   HEARTH_CATALOG_SOURCE         `auto` (default), `offline` or `registry`: where catalog aliases come from
 *   HEARTH_IMAGE_MAX_*            size, entry and depth bounds of a pulled image (oci/limits.ts)
 */
import fs from 'node:fs';
import { DOCKER_HUB, DOCKER_HUB_API, isLoopbackRegistry } from './reference.ts';
import { isListed, normalizeListed, type OutboundPolicy } from './outbound.ts';
import { imageLimits, type ImageLimits } from './limits.ts';

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryConfig {
  /** A registry request that receives nothing for this long is aborted. */
  timeoutMs: number;
  insecure: string[];
  /**
   * Registries (host or host:port) an operator allows on non-public
   * addresses (loopback, link-local, private): HEARTH_PRIVATE_REGISTRIES.
   * Insecure registries and the mirror count as listed too.
   */
  privateRegistries: string[];
  /** Size, entry and depth bounds of pulled layers; default: imageLimits() (the environment). */
  limits?: ImageLimits;
  /** Base URL serving Docker Hub's names, instead of registry-1.docker.io. */
  mirror: string | null;
  /** Unqualified names may be pulled (from Docker Hub or the mirror). */
  dockerHub: boolean;
  credentials: Record<string, Credentials>;
  catalogSource: 'auto' | 'offline' | 'registry';
  /** Serve a seed name by an image of another version offline (python-3.12 → python-3.11): HEARTH_OFFLINE_SUBSTITUTES=1. */
  offlineSubstitutes?: boolean;
}

export const DEFAULT_REGISTRY_TIMEOUT_MS = 30_000;

export class RegistryConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegistryConfigError';
  }
}

/** Docker's config.json `auths` section → credentials by host. */
export function parseDockerAuths(text: string): Record<string, Credentials> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new RegistryConfigError(`registry credentials file is not JSON: ${(e as Error).message}`);
  }
  const auths = (doc as { auths?: unknown })?.auths;
  const out: Record<string, Credentials> = {};
  if (typeof auths !== 'object' || auths === null) return out;
  for (const [key, v] of Object.entries(auths as Record<string, unknown>)) {
    const entry = v as { auth?: unknown; username?: unknown; password?: unknown };
    let username: string | undefined;
    let password: string | undefined;
    if (typeof entry?.auth === 'string') {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) [username, password] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
    } else if (typeof entry?.username === 'string' && typeof entry.password === 'string') {
      [username, password] = [entry.username, entry.password];
    }
    if (username === undefined || password === undefined) continue;
    // Keys may be URLs (`https://index.docker.io/v1/`): keep the host.
    let host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
    if (host === 'index.docker.io' || host === DOCKER_HUB_API) host = DOCKER_HUB;
    out[host] = { username, password };
  }
  return out;
}

export function registryConfig(env: NodeJS.ProcessEnv = process.env): RegistryConfig {
  const timeout = Number(env.HEARTH_REGISTRY_TIMEOUT_MS ?? DEFAULT_REGISTRY_TIMEOUT_MS);
  const source = env.HEARTH_CATALOG_SOURCE ?? 'auto';
  if (source !== 'auto' && source !== 'offline' && source !== 'registry') throw new RegistryConfigError(`HEARTH_CATALOG_SOURCE must be auto, offline or registry (got ${source})`);
  let credentials: Record<string, Credentials> = {};
  if (env.HEARTH_REGISTRY_AUTH_FILE) {
    let text: string;
    try {
      text = fs.readFileSync(env.HEARTH_REGISTRY_AUTH_FILE, 'utf8');
    } catch (e) {
      throw new RegistryConfigError(`cannot read HEARTH_REGISTRY_AUTH_FILE: ${(e as Error).message}`);
    }
    credentials = parseDockerAuths(text);
  }
  const mirror = env.HEARTH_REGISTRY_MIRROR ? env.HEARTH_REGISTRY_MIRROR.replace(/\/+$/, '') : null;
  if (mirror && !/^https?:\/\/[^/]+$/.test(mirror)) throw new RegistryConfigError(`HEARTH_REGISTRY_MIRROR must be a base URL like http://127.0.0.1:5000 (got ${mirror})`);
  return {
    timeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : DEFAULT_REGISTRY_TIMEOUT_MS,
    insecure: (env.HEARTH_INSECURE_REGISTRIES ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean),
    privateRegistries: (env.HEARTH_PRIVATE_REGISTRIES ?? '').split(',').map(normalizeListed).filter(Boolean),
    limits: imageLimits(env),
    mirror,
    dockerHub: env.HEARTH_DOCKER_HUB === '1' || env.HEARTH_DOCKER_HUB === 'true' || mirror !== null,
    credentials,
    catalogSource: source,
    offlineSubstitutes: env.HEARTH_OFFLINE_SUBSTITUTES === '1' || env.HEARTH_OFFLINE_SUBSTITUTES === 'true',
  };
}

/** The outbound policy of a config: the hosts an operator listed (private, insecure, the mirror's). */
export function outboundPolicy(cfg: Pick<RegistryConfig, 'mirror' | 'insecure' | 'privateRegistries'>): OutboundPolicy {
  const listed = [...(cfg.privateRegistries ?? []), ...cfg.insecure];
  if (cfg.mirror) listed.push(new URL(cfg.mirror).host);
  return { listed: [...new Set(listed.map(normalizeListed).filter(Boolean))] };
}

/**
 * Base URL of a registry's API: the mirror for Docker Hub, http for insecure
 * hosts and for loopback registries an operator listed, https otherwise.
 */
export function registryBaseUrl(registry: string, cfg: Pick<RegistryConfig, 'mirror' | 'insecure' | 'privateRegistries'>): string {
  if (registry === DOCKER_HUB) return cfg.mirror ?? `https://${DOCKER_HUB_API}`;
  const listedLoopback = isLoopbackRegistry(registry) && isListed(outboundPolicy(cfg), new URL(`http://${registry}`));
  const scheme = listedLoopback || cfg.insecure.includes(registry) ? 'http' : 'https';
  return `${scheme}://${registry}`;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parse `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` (one challenge). */
export function parseChallenge(header: string): Challenge | null {
  const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (!m) return null;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/g;
  for (const p of (m[2] ?? '').matchAll(re)) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  return { scheme: m[1]!.toLowerCase(), params };
}

/** The token endpoint URL for a Bearer challenge. */
export function tokenUrl(ch: Challenge, scope: string): string {
  const realm = ch.params.realm;
  if (!realm) throw new RegistryConfigError('Bearer challenge without a realm');
  const u = new URL(realm);
  if (ch.params.service) u.searchParams.set('service', ch.params.service);
  u.searchParams.set('scope', ch.params.scope ?? scope);
  return u.toString();
}

export function basicAuth(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}
