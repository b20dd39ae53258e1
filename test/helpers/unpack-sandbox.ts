/**
 * A sandbox for unpacker attacks: a temp dir holding the layer root and,
 * beside it, a canary directory standing in for the host (files, a
 * subdirectory, known times and modes). `changes()` lists every difference
 * outside the layer root since the sandbox was made, so a test asserts that
 * a hostile layer touched nothing it does not own.
 *
 * xattrs are written by `setfattr`, which is replaced on PATH by a recorder
 * (running the real one too when the host has it): `xattrTargets()` are the
 * files it was asked to change, resolved, so a test can check none of them
 * is outside the root even when its path only reaches out through a symlink.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface UnpackSandbox {
  dir: string;
  root: string;
  canary: string;
  /** Paths outside `root` (relative to `dir`) that were created, removed or changed. */
  changes(): Promise<string[]>;
  /** Every file setfattr was asked to change, with its parent directory resolved. */
  xattrTargets(): Promise<string[]>;
  /** Files setfattr was asked to change that are not inside the root (after resolving their parent). */
  xattrEscapes(): Promise<string[]>;
  /** Empty the layer root for the next unpack (the root itself stays, so its parent does not change). */
  reset(): Promise<void>;
  cleanup(): Promise<void>;
}

async function snapshot(dir: string, skip: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (p: string) => {
    if (p === skip) return;
    const st = await fs.lstat(p);
    out.set(path.relative(dir, p) || '.', [st.mode, st.uid, st.gid, st.size, st.mtimeMs, st.ctimeMs, st.rdev, st.nlink].join(':'));
    if (st.isDirectory()) for (const n of (await fs.readdir(p)).sort()) await walk(path.join(p, n));
  };
  await walk(dir);
  return out;
}

function unescapeGetfattr(name: string): string {
  return Buffer.from(name.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))), 'latin1').toString('utf8');
}

let shimmed: { bin: string; log: string; path: string | undefined } | null = null;

/** Put the recording setfattr first on PATH (once per process). */
async function shimSetfattr(): Promise<string> {
  if (shimmed) return shimmed.log;
  const bin = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-setfattr-'));
  const log = path.join(bin, 'log');
  await fs.writeFile(log, '');
  await fs.writeFile(path.join(bin, 'setfattr'), [
    '#!/bin/sh',
    'in=$(mktemp)',
    'cat > "$in"',
    `{ echo "ARGS $*"; cat "$in"; } >> '${log}'`,
    'rc=0',
    'if [ -x /usr/bin/setfattr ]; then /usr/bin/setfattr "$@" < "$in"; rc=$?; fi',
    'rm -f "$in"',
    'exit $rc',
    '',
  ].join('\n'), { mode: 0o755 });
  shimmed = { bin, log, path: process.env.PATH };
  process.env.PATH = `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`;
  return log;
}

/** Restore PATH and remove the recorder (call once, after the file's tests). */
export async function removeSetfattrShim(): Promise<void> {
  if (!shimmed) return;
  process.env.PATH = shimmed.path;
  await fs.rm(shimmed.bin, { recursive: true, force: true });
  shimmed = null;
}

export async function makeSandbox(): Promise<UnpackSandbox> {
  const log = await shimSetfattr();
  const dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-unpack-')));
  const root = path.join(dir, 'root');
  const canary = path.join(dir, 'canary');
  await fs.mkdir(root);
  await fs.mkdir(path.join(canary, 'sub'), { recursive: true });
  await fs.mkdir(path.join(canary, 'e'));
  await fs.writeFile(path.join(canary, 'f'), 'host file');
  await fs.writeFile(path.join(canary, 'sub', 'g'), 'host file 2');
  for (const p of ['sub/g', 'f', 'sub', 'e', '.']) await fs.utimes(path.join(canary, p), 1_000_000, 1_000_000);
  await fs.utimes(dir, 1_000_000, 1_000_000);
  const logStart = (await fs.stat(log)).size;
  const before = await snapshot(dir, root);
  const xattrTargets = async () => {
    const text = (await fs.readFile(log, 'utf8').then((t) => Buffer.from(t).subarray(logStart).toString('utf8')));
    const out: string[] = [];
    for (const line of text.split('\n')) {
      if (!line.startsWith('# file: ')) continue;
      const p = unescapeGetfattr(line.slice('# file: '.length));
      const parent = await fs.realpath(path.dirname(p)).catch(() => path.dirname(p));
      out.push(path.join(parent, path.basename(p)));
    }
    return out;
  };
  return {
    dir, root, canary,
    async changes() {
      const after = await snapshot(dir, root);
      const keys = new Set([...before.keys(), ...after.keys()]);
      return [...keys].filter((k) => before.get(k) !== after.get(k)).sort();
    },
    xattrTargets,
    async xattrEscapes() {
      return (await xattrTargets()).filter((p) => p !== root && !p.startsWith(`${root}/`));
    },
    async reset() {
      for (const n of await fs.readdir(root)) await fs.rm(path.join(root, n), { recursive: true, force: true });
    },
    async cleanup() {
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
