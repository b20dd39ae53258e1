/**
 * "What is this image, and is it here?" for the rest of Hearth: resolve any
 * name a caller may pass as `image` to a runnable layer stack, pulling it
 * when the host's registry policy allows, and list what the host offers.
 *
 * Resolution order:
 *   1. the seed's short names (`node-20`, `python-3.12`, … — aliases.ts);
 *   2. catalog ids, refs and aliases (`debian-12`, `hearth/node:20`, `python`);
 *   3. local image ids (`oci-<16 hex>`) and config digests (`sha256:…`);
 *   4. OCI references: a local copy first (no network), else a pull — except
 *      Docker Hub names given without a registry host, which are pulled only
 *      when the host allows it (a mirror or HEARTH_DOCKER_HUB), so a typo or
 *      an offline host gives "unknown image", never a connection attempt to
 *      the internet.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { exists } from './atomic.ts';
import { SEED_ALIASES, findSeedAlias, planAlias, type SeedAlias } from './aliases.ts';
import { CATALOG, findRecipe, type ImageRecipe } from './catalog.ts';
import { BlobVerificationError, ImageNotBuiltError, ImageNotFoundError, InvalidImageError, PullNotAllowedError, RegistryError, UnknownImageError } from './errors.ts';
import { parseImageManifest, type ImageManifest } from './manifest.ts';
import { artifactPaths, imageManifestPath, type ArtifactPaths } from './paths.ts';
import { registryConfig, type RegistryConfig } from './oci/auth.ts';
import { pullImage, type PullEvent, type PulledImage } from './oci/pull.ts';
import { listImageRecords, listRefs, readImageRecord, readRef, recordComplete } from './oci/records.ts';
import { DOCKER_HUB, familiarReference, formatReference, parseReference, type ImageReference } from './oci/reference.ts';
import type { ImageCatalogEntry, ResolvedImage } from './types.ts';

export interface StoreOptions {
  artifactsDir?: string;
  /** Registry policy; default: from the environment (oci/auth.ts). */
  registry?: RegistryConfig;
  /** Pull progress (hearthd logs it, the CLI draws it). */
  onPull?: (e: PullEvent) => void;
  /** Called when an alias falls back to its offline image (the official one could not be pulled). */
  onFallback?: (alias: string, reason: string) => void;
}

/** The built manifest of a catalog image, or undefined when it is not built (or unreadable). */
export async function readImageManifest(id: string, opts: StoreOptions = {}): Promise<ImageManifest | undefined> {
  const file = imageManifestPath(artifactPaths(opts.artifactsDir), id);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  return parseImageManifest(text, file);
}

async function missingLayers(paths: ArtifactPaths, m: ImageManifest): Promise<string[]> {
  const missing: string[] = [];
  for (const rel of m.layers) if (!(await exists(path.join(paths.root, rel)))) missing.push(rel);
  return missing;
}

async function builtManifest(paths: ArtifactPaths, id: string): Promise<ImageManifest | undefined> {
  const m = await readImageManifest(id, { artifactsDir: paths.root }).catch(() => undefined);
  if (!m || (await missingLayers(paths, m)).length) return undefined;
  return m;
}

/**
 * overlayfs takes all its options in one page: long lowerdir lists fail at
 * mount time with a kernel error nobody understands. Refuse them here instead.
 */
export const MAX_LOWERDIR_CHARS = 3600;

function toResolved(paths: ArtifactPaths, m: ImageManifest, ref: string): ResolvedImage {
  const layers = m.layers.map((rel) => path.join(paths.root, rel));
  if (layers.join(':').length > MAX_LOWERDIR_CHARS) {
    throw new InvalidImageError(ref, `it has ${layers.length} layers, more than one overlay mount can stack from ${paths.root}`, 'flatten the image (fewer layers) or use a shorter --artifacts-dir path');
  }
  const img: ResolvedImage = { id: m.id, ref, layers, env: [...m.env], workingDir: m.workingDir, user: m.user, digest: m.digest };
  // OCI images and catalog images with a default workload (postgres-16) carry their command.
  if (m.kind === 'oci' || m.entrypoint || m.cmd) {
    img.entrypoint = m.entrypoint ?? null;
    img.cmd = m.cmd ?? null;
  }
  return img;
}

async function resolveRecipe(paths: ArtifactPaths, recipe: ImageRecipe): Promise<ResolvedImage> {
  let m: ImageManifest | undefined;
  try {
    m = await readImageManifest(recipe.id, { artifactsDir: paths.root });
  } catch (e) {
    throw new ImageNotBuiltError(recipe.id, `has an unreadable manifest (${(e as Error).message})`);
  }
  if (!m) throw new ImageNotBuiltError(recipe.id);
  const missing = await missingLayers(paths, m);
  if (missing.length) throw new ImageNotBuiltError(recipe.id, `is missing layers: ${missing.join(', ')}`);
  return toResolved(paths, m, m.ref);
}

/** The local image a reference names, if it is complete on this host. No network. */
export async function localImage(paths: ArtifactPaths, ref: ImageReference): Promise<ImageManifest | undefined> {
  const rec = await readRef(paths, formatReference(ref));
  if (!rec) return undefined;
  const m = await readImageRecord(paths, rec.image).catch(() => undefined);
  return m && m.digest === rec.digest && (await recordComplete(paths, m)) ? m : undefined;
}

async function localById(paths: ArtifactPaths, name: string): Promise<ImageManifest | undefined> {
  let id: string | undefined;
  if (/^oci-[0-9a-f]{16}$/.test(name)) id = name;
  else if (/^sha256:[0-9a-f]{64}$/.test(name)) id = `oci-${name.slice(7, 23)}`;
  if (!id) return undefined;
  const m = await readImageRecord(paths, id).catch(() => undefined);
  if (!m || (name.startsWith('sha256:') && m.digest !== name) || !(await recordComplete(paths, m))) return undefined;
  return m;
}

/** Names of what is usable right now, for "unknown image" hints. */
async function availableNames(paths: ArtifactPaths): Promise<string[]> {
  const out: string[] = [];
  for (const r of CATALOG) if (await builtManifest(paths, r.id)) out.push(r.id);
  for (const ref of await listRefs(paths)) {
    try {
      out.push(familiarReference(parseReference(ref.ref)));
    } catch {
      // an unparsable ref file is ignored (gc reports it)
    }
  }
  return out;
}

/** Failed official pulls of aliases, so an unreachable mirror costs one timeout a minute, not one per create. */
const aliasFailures = new Map<string, { until: number; reason: string }>();
const ALIAS_RETRY_MS = 60_000;

async function resolveAlias(paths: ArtifactPaths, alias: SeedAlias, cfg: RegistryConfig, opts: StoreOptions): Promise<ResolvedImage> {
  const official = parseReference(alias.official);
  const local = await localImage(paths, official);
  if (local) return toResolved(paths, local, familiarReference(official));
  const plan = planAlias(alias, cfg);
  if (plan.use === 'offline') return resolveRecipe(paths, findRecipe(plan.id)!);
  if (plan.use === 'unavailable') throw new PullNotAllowedError(alias.name, plan.reason, plan.hint);
  const failed = aliasFailures.get(alias.official);
  if (failed && failed.until > Date.now() && plan.fallback) {
    return resolveRecipe(paths, findRecipe(plan.fallback)!);
  }
  try {
    const pulled = await pullImage(official, { paths, registry: cfg, onEvent: opts.onPull });
    aliasFailures.delete(alias.official);
    return toResolved(paths, pulled.record, familiarReference(official));
  } catch (e) {
    const recoverable = e instanceof RegistryError || e instanceof ImageNotFoundError || e instanceof BlobVerificationError;
    if (!plan.fallback || !recoverable) throw e;
    const reason = (e as Error).message;
    aliasFailures.set(alias.official, { until: Date.now() + ALIAS_RETRY_MS, reason });
    opts.onFallback?.(alias.name, reason);
    return resolveRecipe(paths, findRecipe(plan.fallback)!);
  }
}

/**
 * Resolve an id, alias or reference to a runnable image, pulling it when
 * allowed. Throws typed errors (ValidationFailed kinds for bad or unknown
 * names, Unavailable kinds for registry trouble and unbuilt images).
 */
export async function resolveImage(nameOrRef: string, opts: StoreOptions = {}): Promise<ResolvedImage> {
  const paths = artifactPaths(opts.artifactsDir);
  const name = nameOrRef.trim();
  const alias = findSeedAlias(name);
  const cfg = () => opts.registry ?? registryConfig();
  if (alias) return resolveAlias(paths, alias, cfg(), opts);
  const recipe = findRecipe(name);
  if (recipe) return resolveRecipe(paths, recipe);
  const byId = await localById(paths, name.toLowerCase());
  if (byId) return toResolved(paths, byId, byId.ref);

  let ref: ImageReference;
  try {
    ref = parseReference(name);
  } catch (e) {
    // A plain word that is not a valid reference either: say "unknown image" with what exists.
    if (!/[/:@]/.test(name)) throw new UnknownImageError(name, await availableNames(paths), CATALOG.map((r) => r.id));
    throw e;
  }
  const local = await localImage(paths, ref);
  if (local) return toResolved(paths, local, familiarReference(ref));
  const policy = cfg();
  if (ref.registry === DOCKER_HUB && !ref.explicitRegistry && !policy.dockerHub) {
    const e = new UnknownImageError(name, await availableNames(paths), CATALOG.map((r) => r.id));
    throw new UnknownImageError(name, await availableNames(paths), CATALOG.map((r) => r.id), `${e.hint}; Docker Hub names are pulled only when the host allows it (HEARTH_REGISTRY_MIRROR=<url> or HEARTH_DOCKER_HUB=1); a name with a registry host (registry.example.com/app:1) is pulled from that registry`);
  }
  const pulled = await pullImage(ref, { paths, registry: policy, onEvent: opts.onPull });
  return toResolved(paths, pulled.record, familiarReference(ref));
}

/**
 * Pull for `hearth images pull`: an operator naming an image asks for the
 * network, so Docker Hub names are pulled too (through the mirror if one is set).
 */
export async function pullByName(nameOrRef: string, opts: StoreOptions = {}): Promise<PulledImage & { name: string }> {
  const paths = artifactPaths(opts.artifactsDir);
  const alias = findSeedAlias(nameOrRef);
  const ref = parseReference(alias ? alias.official : nameOrRef);
  const pulled = await pullImage(ref, { paths, registry: opts.registry ?? registryConfig(), onEvent: opts.onPull });
  return { ...pulled, name: familiarReference(ref) };
}

/** Versions an OCI image states about itself: labels, and the *_VERSION variables official images set. */
export function ociVersions(m: ImageManifest): Record<string, string> {
  const out: Record<string, string> = { ...m.versions };
  const env = Object.fromEntries(m.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  const known: Array<[string, string]> = [
    ['NODE_VERSION', 'node'], ['PYTHON_VERSION', 'python'], ['GOLANG_VERSION', 'go'], ['RUST_VERSION', 'rust'],
    ['PG_VERSION', 'postgres'], ['YARN_VERSION', 'yarn'], ['PYTHON_PIP_VERSION', 'pip'], ['JAVA_VERSION', 'java'],
  ];
  for (const [k, label] of known) if (env[k]) out[label] = env[k]!;
  return out;
}

function catalogEntry(r: ImageRecipe, m: ImageManifest | undefined): ImageCatalogEntry {
  const entry: ImageCatalogEntry = {
    id: r.id, image: r.ref, label: r.label, desc: r.desc, category: r.category,
    aliases: [...r.aliases], versions: { ...(m?.versions ?? {}) }, origin: { ...r.origin }, available: m !== undefined, source: 'catalog',
  };
  if (!m && r.optional) entry.note = `not built on this host: \`hearth setup --images ${r.id}\` builds it`;
  if (m && (m.entrypoint || m.cmd)) entry.config = imageConfigView(m);
  if (r.capabilities) entry.capabilities = [...r.capabilities];
  if (r.minimum_resources) entry.minimum_resources = { ...r.minimum_resources };
  return entry;
}

function imageConfigView(m: ImageManifest): NonNullable<ImageCatalogEntry['config']> {
  return { entrypoint: m.entrypoint ?? null, cmd: m.cmd ?? null, env: [...m.env], working_dir: m.workingDir, user: m.user };
}

/**
 * Everything the host offers: catalog images (built or not), the seed's
 * short names with what they resolve to *right now* and the versions that
 * really are inside, and every pulled or imported image under its names.
 * Never touches the network.
 */
export async function listCatalog(opts: StoreOptions = {}): Promise<ImageCatalogEntry[]> {
  const paths = artifactPaths(opts.artifactsDir);
  const cfg = opts.registry ?? (() => {
    try {
      return registryConfig();
    } catch {
      return undefined;
    }
  })();
  const built = new Map<string, ImageManifest | undefined>();
  for (const r of CATALOG) built.set(r.id, await builtManifest(paths, r.id));
  const out: ImageCatalogEntry[] = CATALOG.map((r) => catalogEntry(r, built.get(r.id)));

  const records = new Map((await listImageRecords(paths)).map((m) => [m.id, m]));
  const complete = new Map<string, boolean>();
  for (const m of records.values()) complete.set(m.id, await recordComplete(paths, m));

  for (const a of SEED_ALIASES) {
    const official = parseReference(a.official);
    const local = await localImage(paths, official);
    const plan = planAlias(a, cfg ?? { dockerHub: false, catalogSource: 'offline' });
    const i = out.findIndex((e) => e.id === a.name);
    // A seed name that is a catalog id and is served offline by that very image: the catalog entry says it all.
    if (i >= 0 && !local && plan.use === 'offline' && plan.id === a.name) continue;
    const entry: ImageCatalogEntry = {
      id: a.name, image: a.name, label: a.label, desc: a.desc, category: a.category, aliases: [],
      versions: {}, available: false, source: 'alias',
    };
    if (local) {
      Object.assign(entry, { versions: ociVersions(local), available: true, resolves_to: familiarReference(official), digest: local.digest, config: imageConfigView(local) });
      entry.note = `official image ${familiarReference(official)}, pulled or imported on this host`;
    } else if (plan.use === 'official') {
      const fallback = plan.fallback ? built.get(plan.fallback) : undefined;
      entry.resolves_to = familiarReference(official);
      entry.note = `pulled from ${familiarReference(official)} on first use${plan.fallback ? `; if the registry cannot be reached: ${plan.fallback}${a.offlineNote ? ` (${a.offlineNote})` : ''}` : ''}`;
      if (fallback) entry.versions = { ...fallback.versions };
      entry.available = true;
      entry.pull = familiarReference(official);
    } else if (plan.use === 'offline') {
      const m = built.get(plan.id);
      entry.resolves_to = plan.id;
      entry.versions = { ...(m?.versions ?? {}) };
      entry.available = m !== undefined;
      entry.note = a.offlineNote ?? `offline image ${plan.id}`;
    } else {
      entry.note = `unavailable: ${plan.reason}; ${plan.hint}`;
    }
    // A seed name that is also a catalog id, served by the official image: one entry, the alias's view of it.
    if (i >= 0) out[i] = { ...out[i]!, ...entry, aliases: out[i]!.aliases };
    else out.push(entry);
  }

  const refsByImage = new Map<string, string[]>();
  for (const rec of await listRefs(paths)) {
    let familiar: string;
    try {
      familiar = familiarReference(parseReference(rec.ref));
    } catch {
      continue;
    }
    const m = records.get(rec.image);
    if (!m || m.digest !== rec.digest) continue;
    refsByImage.set(m.id, [...(refsByImage.get(m.id) ?? []), familiar]);
  }
  for (const m of records.values()) {
    const names = refsByImage.get(m.id) ?? [];
    const main = names[0] ?? m.id;
    const from = m.source?.type === 'registry' ? `pulled from ${m.source.from}` : m.source?.type === 'build' ? 'built from a Dockerfile on this host' : `imported from ${m.source?.from ?? 'an archive'}`;
    const entry: ImageCatalogEntry = {
      id: main, image: main, label: main, desc: `${from} (${m.digest.slice(0, 19)}…)`, category: 'runtime',
      aliases: [...names.slice(1), m.id], versions: ociVersions(m), available: complete.get(m.id) === true,
      source: m.source?.type === 'registry' ? 'pulled' : m.source?.type === 'build' ? 'built' : 'imported', digest: m.digest, size: m.size ?? 0, config: imageConfigView(m),
    };
    if (m.build) entry.build = { namespace: m.build.namespace, published: m.build.published };
    out.push(entry);
  }
  return out;
}
