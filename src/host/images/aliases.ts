/**
 * The seed's short image names (`node-20`, `python-3.12`, `go-1.22`,
 * `rust-1`, `postgres-16`): each maps to an official image when this host
 * may pull from Docker Hub (a mirror or HEARTH_DOCKER_HUB), and to an image
 * built offline by `hearth setup` otherwise. Pure data and decisions.
 *
 * Names tell the truth. `go-1.22`, `rust-1` and `postgres-16` are catalog
 * images built here (bookworm-backports' Go 1.22, trixie's Rust, the npm
 * PostgreSQL 16 binaries). No reachable source ships CPython 3.12, so offline
 * `python-3.12` is refused with a hint to configure a mirror, unless the
 * operator opts in to serving it with Python 3.11
 * (HEARTH_OFFLINE_SUBSTITUTES=1), which every listing then reports.
 */
import type { RegistryConfig } from './oci/auth.ts';

export interface SeedAlias {
  name: string;
  label: string;
  desc: string;
  category: 'runtime' | 'database';
  /** The official image (Docker Hub) the name stands for. */
  official: string;
  /** Catalog id that serves the name offline, if any. */
  offline: string | null;
  /** Why the offline image differs from the name, shown in listings. */
  offlineNote: string | null;
  /** The offline image is another version than the name says: served only when the operator opts in. */
  substitute?: boolean;
}

export const SEED_ALIASES: SeedAlias[] = [
  {
    name: 'node-20', label: 'Node.js 20', desc: 'Node.js 20 on Debian 12.', category: 'runtime',
    official: 'docker.io/library/node:20-bookworm-slim', offline: 'node-20', offlineNote: null,
  },
  {
    name: 'python-3.12', label: 'Python 3.12', desc: 'Python 3.12 on Debian 12.', category: 'runtime',
    official: 'docker.io/library/python:3.12-slim-bookworm', offline: 'python-3.11', substitute: true,
    offlineNote: 'offline this host serves Debian 12\'s Python 3.11 (bookworm has no 3.12); configure a registry to get 3.12',
  },
  {
    name: 'go-1.22', label: 'Go 1.22', desc: 'Go 1.22 toolchain on Debian 12.', category: 'runtime',
    official: 'docker.io/library/golang:1.22-bookworm', offline: 'go-1.22', offlineNote: null,
  },
  {
    name: 'rust-1', label: 'Rust 1', desc: 'Current stable Rust on Debian 12.', category: 'runtime',
    official: 'docker.io/library/rust:1-slim-bookworm', offline: 'rust-1',
    offlineNote: 'offline: Debian 13 (trixie) rustc and cargo, which may trail the newest stable by a few releases',
  },
  {
    name: 'postgres-16', label: 'PostgreSQL 16', desc: 'PostgreSQL 16 server on Debian 12.', category: 'database',
    official: 'docker.io/library/postgres:16-bookworm', offline: 'postgres-16', offlineNote: null,
  },
];

export function findSeedAlias(name: string): SeedAlias | undefined {
  const n = name.trim().toLowerCase();
  return SEED_ALIASES.find((a) => a.name === n);
}

export type AliasPlan =
  /** Try the official image (local copy first, then pull); on failure fall back to `offline` when set. */
  | { use: 'official'; ref: string; fallback: string | null }
  | { use: 'offline'; id: string }
  | { use: 'unavailable'; reason: string; hint: string };

/** How to serve an alias under a registry policy. */
export function planAlias(a: SeedAlias, cfg: Pick<RegistryConfig, 'dockerHub' | 'catalogSource'> & { offlineSubstitutes?: boolean }): AliasPlan {
  const canPull = cfg.dockerHub && cfg.catalogSource !== 'offline';
  const offline = a.offline && (!a.substitute || cfg.offlineSubstitutes) ? a.offline : null;
  if (canPull) return { use: 'official', ref: a.official, fallback: cfg.catalogSource === 'registry' ? null : offline };
  if (offline) return { use: 'offline', id: offline };
  if (a.substitute) {
    return {
      use: 'unavailable',
      reason: `no source this host reaches ships it (${a.offlineNote ?? 'no offline build'})`,
      hint: `configure a registry mirror (HEARTH_REGISTRY_MIRROR=<url>), import ${a.official} with \`hearth images import\`, or let the operator serve ${a.offline} under this name (HEARTH_OFFLINE_SUBSTITUTES=1)`,
    };
  }
  return {
    use: 'unavailable',
    reason: a.offlineNote ?? 'it needs a registry',
    hint: `configure a registry (HEARTH_REGISTRY_MIRROR=<url> or HEARTH_DOCKER_HUB=1) or import ${a.official} with \`hearth images import\``,
  };
}
