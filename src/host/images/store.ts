/**
 * Catalog builds: `hearth setup` builds the catalog images into the
 * artifacts dir here. Resolution of names (catalog, aliases, OCI refs) and
 * listing live in resolve.ts and are re-exported for existing callers.
 */
import path from 'node:path';
import { writeFileAtomic } from './atomic.ts';
import {
  CATALOG, DEBIAN_SUITE, RECIPE_VERSION, buildOrder, findRecipe, recipeConfig, type ImageRecipe,
} from './catalog.ts';
import { ImageBuildError, UnknownImageError } from './errors.ts';
import { hashKey } from './hash.ts';
import { checkExpectedVersions, type ImageManifest } from './manifest.ts';
import { ensureNodeRuntime, type NodeRuntime } from './node-runtime.ts';
import { artifactPaths, imageManifestPath } from './paths.ts';
import { readImageManifest } from './resolve.ts';
import { buildLayer, type BuiltLayer, type LayerContext } from './rootfs.ts';
import { hostSources, type HostSources } from './sources.ts';

export { listCatalog, localImage, pullByName, readImageManifest, resolveImage, type StoreOptions } from './resolve.ts';

/** Pure: an image's digest from its layer keys (top first) and config (a default command only when it has one). */
export function imageDigest(
  layerKeys: string[],
  config: { env: string[]; workingDir: string; user: string; entrypoint?: string[] | null; cmd?: string[] | null; exposedPorts?: string[] },
): string {
  const base = { layers: layerKeys, env: config.env, workingDir: config.workingDir, user: config.user };
  if (!config.entrypoint && !config.cmd && !config.exposedPorts?.length) return hashKey(base);
  return hashKey({ ...base, entrypoint: config.entrypoint ?? null, cmd: config.cmd ?? null, exposed: config.exposedPorts ?? [] });
}

/** Shared state of one build run: the host's sources and the Node runtime are looked up once. */
export interface BuildContext extends LayerContext {
  recipes: ImageRecipe[];
}

export function createBuildContext(opts: { artifactsDir?: string } & { log: (line: string) => void; onToolLine?: (line: string) => void }): BuildContext {
  const paths = artifactPaths(opts.artifactsDir);
  const sourcesBySuite = new Map<string, Promise<HostSources>>();
  let runtime: Promise<NodeRuntime> | undefined;
  return {
    paths,
    log: opts.log,
    onToolLine: opts.onToolLine,
    built: new Map<string, BuiltLayer>(),
    recipes: CATALOG,
    sources: (suite, extraSuites = []) => {
      const key = [suite, ...extraSuites].join('+');
      let p = sourcesBySuite.get(key);
      if (!p) sourcesBySuite.set(key, (p = hostSources(suite, '/etc/apt', { extraSuites, hostSuite: DEBIAN_SUITE })));
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

  const config = recipeConfig(recipe);
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
      env: [...config.env],
      workingDir: config.workingDir,
      user: config.user,
      ...(config.entrypoint || config.cmd ? { entrypoint: config.entrypoint, cmd: config.cmd } : {}),
      ...(config.exposedPorts.length ? { exposed_ports: config.exposedPorts } : {}),
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
