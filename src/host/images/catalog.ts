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
    }
  | {
      /** /usr/local/bin/node + npm on top of `base` (adds files only, no whiteouts). */
      kind: 'node';
      name: string;
      base: string;
    };

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
  },
];

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
    if (layer.kind === 'node') visit(layer.base, [...seen, name]);
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
      if (layer.kind === 'node' && below !== layer.base) problems.push(`${r.id}: layer ${name} must sit on ${layer.base}`);
      if (layer.kind === 'debian' && below !== undefined) problems.push(`${r.id}: ${name} is a full rootfs and must be the bottom layer`);
    });
  }
  return problems;
}
