/**
 * The image store: builds catalog images into the artifacts dir and answers
 * "what is this image, and is it here?" for the rest of Hearth.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic, exists } from './atomic.ts';
import {
  CATALOG, IMAGE_ENV, IMAGE_USER, IMAGE_WORKING_DIR, RECIPE_VERSION, buildOrder, findRecipe, type ImageRecipe,
} from './catalog.ts';
import { ImageBuildError, ImageNotBuiltError, UnknownImageError } from './errors.ts';
import { hashKey } from './hash.ts';
import { checkExpectedVersions, parseImageManifest, type ImageManifest } from './manifest.ts';
import { ensureNodeRuntime, type NodeRuntime } from './node-runtime.ts';
import { artifactPaths, imageManifestPath, type ArtifactPaths } from './paths.ts';
import { buildLayer, type BuiltLayer, type LayerContext } from './rootfs.ts';
import { hostSources, type HostSources } from './sources.ts';
import type { ImageCatalogEntry, ResolvedImage } from './types.ts';

export interface StoreOptions {
  artifactsDir?: string;
}

/** Pure: an image's digest from its layer keys (top first) and config. */
export function imageDigest(layerKeys: string[], config: { env: string[]; workingDir: string; user: string }): string {
  return hashKey({ layers: layerKeys, env: config.env, workingDir: config.workingDir, user: config.user });
}

/** The built manifest of an image, or undefined when it is not built (or unreadable). */
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

function catalogEntry(r: ImageRecipe, m: ImageManifest | undefined): ImageCatalogEntry {
  const entry: ImageCatalogEntry = {
    id: r.id,
    image: r.ref,
    label: r.label,
    desc: r.desc,
    category: r.category,
    aliases: [...r.aliases],
    versions: { ...(m?.versions ?? {}) },
    available: m !== undefined,
  };
  if (r.capabilities) entry.capabilities = [...r.capabilities];
  if (r.minimum_resources) entry.minimum_resources = { ...r.minimum_resources };
  return entry;
}

/** Every catalog image, with `available` telling whether it is built on this host. */
export async function listCatalog(opts: StoreOptions = {}): Promise<ImageCatalogEntry[]> {
  const paths = artifactPaths(opts.artifactsDir);
  return Promise.all(CATALOG.map(async (r) => catalogEntry(r, await builtManifest(paths, r.id))));
}

/** Resolve an id, ref or alias to a built image. Throws UnknownImageError / ImageNotBuiltError. */
export async function resolveImage(nameOrRef: string, opts: StoreOptions = {}): Promise<ResolvedImage> {
  const paths = artifactPaths(opts.artifactsDir);
  const recipe = findRecipe(nameOrRef);
  if (!recipe) {
    const built: string[] = [];
    for (const r of CATALOG) if (await builtManifest(paths, r.id)) built.push(r.id);
    throw new UnknownImageError(nameOrRef, built, CATALOG.map((r) => r.id));
  }
  let m: ImageManifest | undefined;
  try {
    m = await readImageManifest(recipe.id, opts);
  } catch (e) {
    throw new ImageNotBuiltError(recipe.id, `has an unreadable manifest (${(e as Error).message})`);
  }
  if (!m) throw new ImageNotBuiltError(recipe.id);
  const missing = await missingLayers(paths, m);
  if (missing.length) throw new ImageNotBuiltError(recipe.id, `is missing layers: ${missing.join(', ')}`);
  return {
    id: m.id,
    ref: m.ref,
    layers: m.layers.map((rel) => path.join(paths.root, rel)),
    env: [...m.env],
    workingDir: m.workingDir,
    user: m.user,
    digest: m.digest,
  };
}

/** Shared state of one build run: the host's sources and the Node runtime are looked up once. */
export interface BuildContext extends LayerContext {
  recipes: ImageRecipe[];
}

export function createBuildContext(opts: StoreOptions & { log: (line: string) => void; onToolLine?: (line: string) => void }): BuildContext {
  const paths = artifactPaths(opts.artifactsDir);
  const sourcesBySuite = new Map<string, Promise<HostSources>>();
  let runtime: Promise<NodeRuntime> | undefined;
  return {
    paths,
    log: opts.log,
    onToolLine: opts.onToolLine,
    built: new Map<string, BuiltLayer>(),
    recipes: CATALOG,
    sources: (suite) => {
      let p = sourcesBySuite.get(suite);
      if (!p) sourcesBySuite.set(suite, (p = hostSources(suite)));
      return p;
    },
    runtime: () => (runtime ??= ensureNodeRuntime({ artifactsDir: paths.root, log: opts.log })),
  };
}

export interface EnsuredImage {
  id: string;
  ref: string;
  digest: string;
  versions: Record<string, string>;
  layers: Array<{ name: string; dir: string; cached: boolean; seconds: number }>;
  /** True when the image and all its layers were already built. */
  cached: boolean;
  seconds: number;
}

/** Build (or find) one catalog image and write its manifest. */
export async function ensureImage(nameOrId: string, ctx: BuildContext): Promise<EnsuredImage> {
  const started = Date.now();
  const recipe = findRecipe(nameOrId, ctx.recipes);
  if (!recipe) throw new UnknownImageError(nameOrId, ctx.recipes.map((r) => r.id));
  const built = new Map<string, BuiltLayer>();
  for (const layer of buildOrder(recipe)) built.set(layer.name, await buildLayer(layer, ctx));
  const stack = recipe.layers.map((n) => built.get(n) as BuiltLayer);
  const versions: Record<string, string> = {};
  for (const l of [...stack].reverse()) Object.assign(versions, l.versions);
  const problems = checkExpectedVersions(versions, recipe.expect);
  if (problems.length) throw new ImageBuildError(recipe.id, `built tree does not match the image's name: ${problems.join('; ')}`);

  const config = { env: IMAGE_ENV, workingDir: IMAGE_WORKING_DIR, user: IMAGE_USER };
  const digest = imageDigest(stack.map((l) => l.key), config);
  const file = imageManifestPath(ctx.paths, recipe.id);
  const previous = await readImageManifest(recipe.id, { artifactsDir: ctx.paths.root }).catch(() => undefined);
  const manifestCached = previous?.digest === digest;
  if (!manifestCached) {
    const manifest: ImageManifest = {
      schema: 1,
      id: recipe.id,
      ref: recipe.ref,
      layers: stack.map((l) => path.relative(ctx.paths.root, l.rootfs)),
      layer_digests: stack.map((l) => l.key),
      ...config,
      env: [...config.env],
      digest,
      versions,
      built_at: new Date().toISOString(),
      recipe_version: RECIPE_VERSION,
    };
    await writeFileAtomic(file, `${JSON.stringify(manifest, null, 2)}\n`);
  }
  return {
    id: recipe.id,
    ref: recipe.ref,
    digest,
    versions,
    layers: stack.map((l) => ({ name: l.name, dir: l.dir, cached: l.cached, seconds: l.seconds })),
    cached: manifestCached && stack.every((l) => l.cached),
    seconds: (Date.now() - started) / 1000,
  };
}
