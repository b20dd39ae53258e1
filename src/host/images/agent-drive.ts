/**
 * The agent drive: `agent/<hash>/` with bin/node, bin/tini, lib/ (loader and
 * the libraries node needs) and the bundled guest agent. Keyed by a hash over
 * its inputs (node pin, tini bytes, library bytes, bundle bytes), built into
 * a scratch dir and renamed into place. hearthd calls `ensureAgentDrive` at
 * start: when nothing changed it costs one agent bundle (~100 ms) plus hashing.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildOnce, exists, scratchDir } from './atomic.ts';
import { AgentBundleError, ImageBuildError } from './errors.ts';
import { hashFile, hashKey, type KeyValue } from './hash.ts';
import { run } from './exec.ts';
import { ensureNodeRuntime, linkOrCopy, parseLdd, type RuntimeLib } from './node-runtime.ts';
import { artifactPaths, shortKey } from './paths.ts';
import type { AgentDrive } from './types.ts';

/** Bump when the drive's layout or build changes. */
export const AGENT_DRIVE_VERSION = 1;

export const TINI_STATIC = '/usr/bin/tini-static';

export type Bundler = (outFile: string) => Promise<void>;

/** Names the drive itself uses at its top level: a bundle may not place files there. */
const RESERVED = new Set(['bin', 'lib', 'drive.json']);

export interface EnsureAgentDriveOptions {
  artifactsDir?: string;
  log?: (line: string) => void;
  /** Defaults to `bundleAgent` from src/agent/bundle.ts (loaded lazily). */
  bundle?: Bundler;
  /** Defaults to Debian's tini-static. */
  tiniPath?: string;
}

export interface EnsuredAgentDrive extends AgentDrive {
  cached: boolean;
  nodeVersion: string;
}

/** The guest agent's bundler, imported at run time so this module compiles before src/agent exists. */
export async function loadBundler(): Promise<Bundler> {
  const file = fileURLToPath(new URL('../../agent/bundle.ts', import.meta.url));
  if (!(await exists(file))) {
    throw new AgentBundleError(
      `the guest agent bundler ${file} does not exist`,
      'the agent source (src/agent/) is not in this tree yet: re-run `hearth setup` once src/agent/bundle.ts exports bundleAgent(outFile)',
    );
  }
  let mod: { bundleAgent?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { bundleAgent?: unknown };
  } catch (e) {
    throw new AgentBundleError(`cannot load ${file}: ${(e as Error).message}`, undefined, { cause: e });
  }
  if (typeof mod.bundleAgent !== 'function') throw new AgentBundleError(`${file} does not export bundleAgent(outFile)`);
  return mod.bundleAgent as Bundler;
}

export interface TreeEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  /** Permission bits. */
  mode: number;
  /** sha256 of a file's bytes or a symlink's target. */
  content?: string;
}

/** Every entry under `dir`, sorted, with content hashes: the identity of a tree. */
export async function listTree(dir: string, rel = ''): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const names = (await fs.readdir(path.join(dir, rel))).sort();
  for (const name of names) {
    const p = rel ? `${rel}/${name}` : name;
    const full = path.join(dir, p);
    const st = await fs.lstat(full);
    const mode = st.mode & 0o7777;
    if (st.isSymbolicLink()) out.push({ path: p, type: 'symlink', mode, content: await fs.readlink(full) });
    else if (st.isDirectory()) {
      out.push({ path: p, type: 'dir', mode });
      out.push(...(await listTree(dir, p)));
    } else if (st.isFile()) out.push({ path: p, type: 'file', mode, content: await hashFile(full) });
  }
  return out;
}

/**
 * Libraries the bundle's native addons need beyond node's own — the PTY
 * addon's `pty.node` links libutil.so.1 (src/agent/bundle.ts,
 * AGENT_NATIVE_LIBS) — resolved with ldd on the build host like node's, and
 * shipped in lib/: the agent's loader path (`--library-path`) then serves
 * them in every image, whatever libc (or none) the image has.
 */
export async function addonLibs(bundleDir: string, tree: TreeEntry[], have: ReadonlySet<string>): Promise<RuntimeLib[]> {
  const out: RuntimeLib[] = [];
  const seen = new Set(have);
  for (const e of tree) {
    if (e.type !== 'file' || !e.path.endsWith('.node')) continue;
    let libs;
    try {
      libs = parseLdd((await run('ldd', [path.join(bundleDir, e.path)])).stdout);
    } catch (err) {
      throw new AgentBundleError(`cannot resolve the libraries of the agent's native addon ${e.path}: ${(err as Error).message}`, 'install the missing library on the host (ldd shows it as "not found")');
    }
    for (const lib of libs) {
      if (seen.has(lib.name)) continue;
      seen.add(lib.name);
      out.push({ ...lib, sha256: await hashFile(lib.path) });
    }
  }
  return out;
}

/** Pure: the drive's key from its inputs. */
export function agentDriveKey(inputs: {
  node: { version: string; integrity: string };
  tini: string;
  libs: Array<{ name: string; sha256: string }>;
  bundle: TreeEntry[];
}): string {
  return hashKey({
    recipe: AGENT_DRIVE_VERSION,
    node: inputs.node,
    tini: inputs.tini,
    libs: [...inputs.libs].sort((a, b) => a.name.localeCompare(b.name)),
    bundle: inputs.bundle as unknown as KeyValue,
  });
}

export async function ensureAgentDrive(opts: EnsureAgentDriveOptions = {}): Promise<EnsuredAgentDrive> {
  const paths = artifactPaths(opts.artifactsDir);
  const log = opts.log ?? (() => {});
  const tiniPath = opts.tiniPath ?? TINI_STATIC;
  if (!(await exists(tiniPath))) {
    throw new ImageBuildError('agent drive', `${tiniPath} not found`, 'install Debian\'s tini package (`hearth setup` does it)');
  }
  const runtime = await ensureNodeRuntime({ artifactsDir: paths.root, log });
  const bundle = opts.bundle ?? (await loadBundler());

  const bundleDir = await scratchDir(paths.tmp, 'agent-bundle');
  try {
    try {
      await bundle(path.join(bundleDir, 'agent.mjs'));
    } catch (e) {
      throw new AgentBundleError(`bundling the guest agent failed: ${(e as Error).message}`, undefined, { cause: e });
    }
    if (!(await exists(path.join(bundleDir, 'agent.mjs')))) throw new AgentBundleError('bundleAgent() did not write agent.mjs');
    const top = await fs.readdir(bundleDir);
    const clash = top.filter((n) => RESERVED.has(n));
    if (clash.length) throw new AgentBundleError(`the agent bundle writes ${clash.join(', ')}, which the drive reserves`);

    const tini = await hashFile(tiniPath);
    const bundleTree = await listTree(bundleDir);
    const extra = await addonLibs(bundleDir, bundleTree, new Set(runtime.libs.map((l) => l.name)));
    const libs = [...runtime.libs, ...extra];
    const hash = agentDriveKey({
      node: { version: runtime.version, integrity: runtime.integrity },
      tini,
      libs: libs.map(({ name, sha256 }) => ({ name, sha256 })),
      bundle: bundleTree,
    });
    const final = path.join(paths.agent, shortKey(hash));
    const started = Date.now();
    const built = await buildOnce(final, paths.tmp, async (tmp) => {
      await fs.mkdir(path.join(tmp, 'bin'), { mode: 0o755 });
      await fs.mkdir(path.join(tmp, 'lib'), { mode: 0o755 });
      await linkOrCopy(runtime.node, path.join(tmp, 'bin', 'node'));
      await fs.copyFile(tiniPath, path.join(tmp, 'bin', 'tini'));
      await fs.chmod(path.join(tmp, 'bin', 'tini'), 0o755);
      for (const lib of runtime.libs) {
        await linkOrCopy(path.join(runtime.libDir, lib.name), path.join(tmp, 'lib', lib.name));
      }
      for (const lib of extra) {
        const dst = path.join(tmp, 'lib', lib.name);
        await fs.copyFile(lib.path, dst);
        await fs.chmod(dst, 0o755);
        if ((await hashFile(dst)) !== lib.sha256) throw new ImageBuildError('agent drive', `${lib.path} changed while being copied`, 'retry when package upgrades are done');
      }
      for (const name of top) await fs.rename(path.join(bundleDir, name), path.join(tmp, name));
      const record = {
        hash,
        node: { version: runtime.version, integrity: runtime.integrity },
        tini: { source: tiniPath, sha256: tini },
        libs: libs.map(({ name, path: source, sha256 }) => ({ name, source, sha256 })),
        bundle: bundleTree.filter((e) => e.type === 'file').map((e) => ({ path: e.path, sha256: e.content })),
        built_at: new Date().toISOString(),
      };
      await fs.writeFile(path.join(tmp, 'drive.json'), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644 });
      await fs.chmod(tmp, 0o755);
    });
    log(`agent drive ${shortKey(hash)}: ${built.cached ? 'CACHED' : `built in ${((Date.now() - started) / 1000).toFixed(1)}s`} (${built.dir})`);
    return { dir: built.dir, hash, cached: built.cached, nodeVersion: runtime.version };
  } finally {
    await fs.rm(bundleDir, { recursive: true, force: true });
  }
}
