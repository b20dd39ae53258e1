/**
 * Building layers. A `debian` layer is a full root filesystem made by
 * mmdebstrap from the host's Debian sources; a `node` layer only ADDS files
 * (/usr/local/bin/node, npm) on top of its base, so it has no whiteouts and
 * flattening the stack is a plain copy, base first.
 *
 * Every layer is `layers/<name>-<key>/{rootfs/, layer.json}`, keyed by a hash
 * of its inputs and built into a scratch dir renamed into place.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { buildOnce, exists } from './atomic.ts';
import { RECIPE_VERSION, type LayerRecipe } from './catalog.ts';
import { ImageBuildError } from './errors.ts';
import { CommandError, run } from './exec.ts';
import { hashKey } from './hash.ts';
import { parseDpkgStatus, pythonVersion, upstreamVersion, type LayerMeta } from './manifest.ts';
import { NPM_PIN, fetchNpmTarball, linkOrCopy, type NodeRuntime, type Tarball } from './node-runtime.ts';
import { layerDir, type ArtifactPaths } from './paths.ts';
import type { HostSources } from './sources.ts';
import { buildPostgresLayer } from './postgres-layer.ts';

/**
 * dpkg path filters applied to every Debian layer, as Debian's own "slim"
 * container images do: no man pages, info or translations; copyright files stay.
 */
export const DPKG_EXCLUDES = [
  'path-exclude=/usr/share/man/*',
  'path-exclude=/usr/share/info/*',
  'path-exclude=/usr/share/doc/*',
  'path-include=/usr/share/doc/*/copyright',
  'path-exclude=/usr/share/locale/*',
  'path-include=/usr/share/locale/locale.alias',
  'path-exclude=/usr/share/lintian/*',
];

export const HOSTS_FILE = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n';

export interface BuiltLayer {
  name: string;
  key: string;
  /** Layer directory (layer.json inside); the tree is `<dir>/rootfs`. */
  dir: string;
  rootfs: string;
  versions: Record<string, string>;
  cached: boolean;
  seconds: number;
}

export interface LayerContext {
  paths: ArtifactPaths;
  /** The host's apt sources for a suite and extra pockets of it (read once per run by the caller). */
  sources: (suite: string, extraSuites?: string[]) => Promise<HostSources>;
  runtime: () => Promise<NodeRuntime>;
  /** Built layers so far, by name (bases of node layers). */
  built: Map<string, BuiltLayer>;
  log: (line: string) => void;
  /** mmdebstrap's progress lines. */
  onToolLine?: (line: string) => void;
}

/** Pure: the key of a Debian layer. Mirrors are not part of it; suites and components are. */
export function debianLayerKey(layer: Extract<LayerRecipe, { kind: 'debian' }>, sourcesIdentity: string[], arch = 'amd64'): string {
  return hashKey({
    recipe: RECIPE_VERSION,
    kind: 'debian',
    suite: layer.suite,
    variant: layer.variant,
    packages: [...new Set(layer.packages)].sort(),
    sources: [...sourcesIdentity].sort(),
    dpkg: DPKG_EXCLUDES,
    arch,
  });
}

/** Pure: the key of a node layer. */
export function nodeLayerKey(baseKey: string, node: { version: string; integrity: string }, npm: { version: string; integrity: string }): string {
  return hashKey({ recipe: RECIPE_VERSION, kind: 'node', base: baseKey, node, npm });
}

/** What a container runtime and the workspace expect to find in every image. */
export async function fixupRootfs(root: string): Promise<void> {
  const etc = path.join(root, 'etc');
  await fs.mkdir(etc, { recursive: true });
  // mmdebstrap leaves the build host's resolv.conf and hostname behind; runc bind-mounts over these.
  for (const [name, text] of [['resolv.conf', ''], ['hostname', 'localhost\n'], ['hosts', HOSTS_FILE]] as const) {
    await fs.rm(path.join(etc, name), { force: true });
    await fs.writeFile(path.join(etc, name), text, { mode: 0o644 });
    await fs.chmod(path.join(etc, name), 0o644);
  }
  await fs.rm(path.join(root, '.hearth'), { recursive: true, force: true });
  await fs.mkdir(path.join(root, '.hearth'), { mode: 0o755 });
  await fs.mkdir(path.join(root, 'tmp'), { recursive: true });
  await fs.chmod(path.join(root, 'tmp'), 0o1777);
  for (const dir of ['var/cache/apt', 'var/lib/apt/lists']) {
    const full = path.join(root, dir);
    for (const name of await fs.readdir(full).catch(() => [] as string[])) {
      if (name.endsWith('.bin')) await fs.rm(path.join(full, name), { force: true });
    }
  }
}

/** Packages whose version an image states as one of its own (label in listings). */
const VERSIONED_PACKAGES: Array<[string | RegExp, string]> = [
  [/^golang-\d+\.\d+-go$/, 'go'], ['rustc', 'rust'], ['cargo', 'cargo'], [/^postgresql-client-\d+$/, 'psql'],
];

/** Versions a Debian tree tells about itself. */
export async function debianVersions(root: string): Promise<Record<string, string>> {
  const versions: Record<string, string> = {};
  versions.debian = (await fs.readFile(path.join(root, 'etc/debian_version'), 'utf8')).trim();
  const pkgs = parseDpkgStatus(await fs.readFile(path.join(root, 'var/lib/dpkg/status'), 'utf8'));
  const py = pythonVersion(pkgs);
  if (py) versions.python = py;
  const pip = pkgs.get('python3-pip');
  if (pip) versions.pip = upstreamVersion(pip);
  const bash = pkgs.get('bash');
  if (bash) versions.bash = upstreamVersion(bash);
  for (const [pkg, label] of VERSIONED_PACKAGES) {
    const v = [...pkgs].find(([name]) => (typeof pkg === 'string' ? name === pkg : pkg.test(name)))?.[1];
    if (v) versions[label] = upstreamVersion(v);
  }
  return versions;
}

async function writeLayerMeta(dir: string, meta: LayerMeta): Promise<void> {
  await fs.writeFile(path.join(dir, 'layer.json'), `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o644 });
}

async function readLayerMeta(dir: string): Promise<LayerMeta | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(dir, 'layer.json'), 'utf8')) as LayerMeta;
  } catch {
    return undefined;
  }
}

async function buildDebianLayer(layer: Extract<LayerRecipe, { kind: 'debian' }>, ctx: LayerContext): Promise<BuiltLayer> {
  const sources = await ctx.sources(layer.suite, layer.extraSuites);
  const key = debianLayerKey(layer, sources.identity);
  const dir = layerDir(ctx.paths, layer.name, key);
  const started = Date.now();
  const inputs = { suite: layer.suite, variant: layer.variant, packages: layer.packages, sources: sources.identity };
  const built = await buildOnce(dir, ctx.paths.tmp, async (tmp) => {
    const rootfs = path.join(tmp, 'rootfs');
    const args = [
      `--variant=${layer.variant}`,
      '--mode=root',
      '--format=directory',
      `--include=${[...new Set(layer.packages)].sort().join(',')}`,
      ...sources.aptOptions.map((o) => `--aptopt=${o}`),
      ...DPKG_EXCLUDES.map((o) => `--dpkgopt=${o}`),
      layer.suite,
      rootfs,
      '-',
    ];
    ctx.log(`mmdebstrap ${layer.name}: ${layer.suite} ${layer.variant} + ${layer.packages.join(',')} (sources: ${sources.files.join(', ')})`);
    try {
      await run('mmdebstrap', args, { input: sources.text, onLine: (line) => ctx.onToolLine?.(`mmdebstrap ${layer.name}: ${line}`) });
    } catch (e) {
      const hint = e instanceof CommandError && /lock/i.test(e.message) ? 'another apt/dpkg process holds a lock: retry when it is done' : 'check that the host reaches its Debian mirror (`apt-get update`)';
      throw new ImageBuildError(layer.name, (e as Error).message, hint, { cause: e });
    }
    await fixupRootfs(rootfs);
    const versions = await debianVersions(rootfs);
    await writeLayerMeta(tmp, {
      schema: 1, name: layer.name, key, inputs, versions,
      built_at: new Date().toISOString(), seconds: (Date.now() - started) / 1000,
    });
  });
  const meta = await readLayerMeta(built.dir);
  if (!meta) throw new ImageBuildError(layer.name, `${built.dir}/layer.json is missing or unreadable`, `remove ${built.dir} and run \`hearth setup\` again`);
  return { name: layer.name, key, dir: built.dir, rootfs: path.join(built.dir, 'rootfs'), versions: meta.versions, cached: built.cached, seconds: (Date.now() - started) / 1000 };
}

/** Copy a directory's mode and ownership from the base layer, so the top layer does not change them. */
async function mkdirLike(base: string, top: string, rel: string): Promise<void> {
  const dst = path.join(top, rel);
  await fs.mkdir(dst, { recursive: true });
  const st = await fs.stat(path.join(base, rel)).catch(() => undefined);
  await fs.chmod(dst, st ? st.mode & 0o7777 : 0o755);
  if (st) await fs.chown(dst, st.uid, st.gid);
}

/**
 * Resolve `rel` inside the tree `root` as a chroot would: absolute symlink
 * targets are taken relative to `root`, never the host.
 */
export async function resolveInRoot(root: string, rel: string): Promise<string> {
  const parts = rel.split('/').filter(Boolean);
  const done: string[] = [];
  for (let hops = 0; parts.length; ) {
    const name = parts.shift() as string;
    if (name === '.') continue;
    if (name === '..') {
      done.pop();
      continue;
    }
    const full = path.join(root, ...done, name);
    const st = await fs.lstat(full);
    if (!st.isSymbolicLink()) {
      done.push(name);
      continue;
    }
    if (++hops > 40) throw new Error(`too many symlinks resolving ${rel} in ${root}`);
    const target = await fs.readlink(full);
    if (target.startsWith('/')) done.length = 0;
    parts.unshift(...target.split('/').filter(Boolean));
  }
  return path.join(root, ...done);
}

/** Run a binary of the layer stack on the base's own loader and libraries: proves it runs on that libc. */
async function runOnBase(base: string, binary: string, args: string[]): Promise<string> {
  const loader = await resolveInRoot(base, 'lib64/ld-linux-x86-64.so.2');
  const libPath = ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu'].map((d) => path.join(base, d)).join(':');
  return (await run(loader, ['--library-path', libPath, binary, ...args])).stdout.trim();
}

async function buildNodeLayer(layer: Extract<LayerRecipe, { kind: 'node' }>, ctx: LayerContext): Promise<BuiltLayer> {
  const base = ctx.built.get(layer.base);
  if (!base) throw new ImageBuildError(layer.name, `base layer ${layer.base} is not built`);
  const runtime = await ctx.runtime();
  const key = nodeLayerKey(base.key, { version: runtime.version, integrity: runtime.integrity }, { version: NPM_PIN.version, integrity: NPM_PIN.integrity });
  const dir = layerDir(ctx.paths, layer.name, key);
  const started = Date.now();
  const built = await buildOnce(dir, ctx.paths.tmp, async (tmp) => {
    const npm: Tarball = await fetchNpmTarball(ctx.paths, NPM_PIN, ctx.log);
    const rootfs = path.join(tmp, 'rootfs');
    await fs.mkdir(rootfs, { mode: 0o755 });
    for (const rel of ['usr', 'usr/local', 'usr/local/bin', 'usr/local/lib', 'usr/local/lib/node_modules']) await mkdirLike(base.rootfs, rootfs, rel);
    const nodeDst = path.join(rootfs, 'usr/local/bin/node');
    await linkOrCopy(runtime.node, nodeDst);
    const npmDir = path.join(rootfs, 'usr/local/lib/node_modules/npm');
    await fs.mkdir(npmDir, { mode: 0o755 });
    await run('tar', ['-xzf', npm.file, '-C', npmDir, '--strip-components=1', '--no-same-owner']);
    await fs.symlink('../lib/node_modules/npm/bin/npm-cli.js', path.join(rootfs, 'usr/local/bin/npm'));
    await fs.symlink('../lib/node_modules/npm/bin/npx-cli.js', path.join(rootfs, 'usr/local/bin/npx'));
    for (const f of ['bin/npm-cli.js', 'bin/npx-cli.js']) await fs.chmod(path.join(npmDir, f), 0o755);

    const nodeVersion = (await runOnBase(base.rootfs, nodeDst, ['--version'])).replace(/^v/, '');
    const npmVersion = (JSON.parse(await fs.readFile(path.join(npmDir, 'package.json'), 'utf8')) as { version: string }).version;
    const npmCheck = await runOnBase(base.rootfs, nodeDst, [path.join(npmDir, 'bin/npm-cli.js'), '--version']).catch((e: Error) => `error: ${e.message}`);
    if (npmCheck !== npmVersion) throw new ImageBuildError(layer.name, `npm --version says ${npmCheck}, package.json says ${npmVersion}`);
    await writeLayerMeta(tmp, {
      schema: 1, name: layer.name, key,
      inputs: { base: base.key, node: { version: runtime.version, integrity: runtime.integrity }, npm: NPM_PIN },
      versions: { node: nodeVersion, npm: npmVersion },
      built_at: new Date().toISOString(), seconds: (Date.now() - started) / 1000,
    });
  });
  const meta = await readLayerMeta(built.dir);
  if (!meta) throw new ImageBuildError(layer.name, `${built.dir}/layer.json is missing or unreadable`, `remove ${built.dir} and run \`hearth setup\` again`);
  return { name: layer.name, key, dir: built.dir, rootfs: path.join(built.dir, 'rootfs'), versions: meta.versions, cached: built.cached, seconds: (Date.now() - started) / 1000 };
}

export async function buildLayer(layer: LayerRecipe, ctx: LayerContext): Promise<BuiltLayer> {
  const done = ctx.built.get(layer.name);
  if (done) return done;
  const result = layer.kind === 'debian' ? await buildDebianLayer(layer, ctx)
    : layer.kind === 'node' ? await buildNodeLayer(layer, ctx)
      : await buildPostgresLayer(layer, ctx);
  if (!(await exists(result.rootfs))) throw new ImageBuildError(layer.name, `${result.rootfs} is missing`, `remove ${result.dir} and run \`hearth setup\` again`);
  ctx.built.set(layer.name, result);
  return result;
}
