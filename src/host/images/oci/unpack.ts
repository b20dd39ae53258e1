/**
 * Unpack one image layer (a tar stream) into its own empty directory, in the
 * form overlayfs reads as a lower layer:
 *
 * - `.wh.<name>` (OCI whiteout) becomes a 0/0 character device `<name>`;
 * - `.wh..wh..opq` (opaque dir) becomes the xattr `trusted.overlay.opaque=y`
 *   on its directory; other `.wh..wh.*` (aufs bookkeeping) are dropped;
 * - hard links are made inside the layer, and only to entries of the same
 *   layer (OCI forbids links across layers);
 * - device nodes and FIFOs are skipped and listed (a workspace gets its /dev
 *   from the runtime; creating host device nodes from an image is never safe);
 * - xattrs: `security.capability` and `user.*` are kept; `trusted.*` and
 *   other namespaces are dropped (an image must not smuggle overlay metadata).
 *
 * Safety: every path is normalized lexically; one that leaves the layer root
 * (`../`) is refused. No path is ever resolved through a symlink: before
 * anything is created, changed or linked, each parent component under the
 * root is checked with lstat to be a real directory of this layer (a symlink,
 * absolute or relative, is never traversed). What is applied at the end
 * (whiteouts, opaque markers, xattrs, directory times) is kept by path, is
 * dropped when a later entry removes the object it belonged to, and is
 * checked again the same way when it is applied; xattrs and times never
 * follow a final symlink either. So the unpacker only ever writes inside
 * `root`, whatever the archive says. A refused layer throws
 * UnsafeLayerError, one over the limits of oci/limits.ts ImageLimitError;
 * the caller discards the directory.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { run } from '../exec.ts';
import { UnsafeLayerError } from '../errors.ts';
import { imageLimits, limitError, type ImageLimits } from './limits.ts';
import type { TarEntry, TarItem } from './tar.ts';

export { UnsafeLayerError };

export interface UnpackStats {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  whiteouts: number;
  opaque: number;
  /** Bytes of regular file data written. */
  bytes: number;
  /** Entries not created, with why (device nodes, FIFOs, dropped xattrs). */
  skipped: Array<{ path: string; reason: string }>;
}

type Kind = 'dir' | 'file' | 'symlink';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const KEPT_XATTR = (name: string) => name === 'security.capability' || name.startsWith('user.');

/**
 * Normalize an archive path to components inside the root: `./a//b/` →
 * `['a','b']`, `/etc/x` → `['etc','x']` (absolute entry paths are taken
 * relative to the root, as Docker does). Throws when `..` climbs out.
 */
export function normalizeEntryPath(p: string): string[] {
  if (p.includes('\0')) throw new UnsafeLayerError(p, 'contains a NUL byte');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw new UnsafeLayerError(p, 'escapes the image root with ".."');
      out.pop();
      continue;
    }
    out.push(part);
  }
  return out;
}

/** Shell-free batch helpers: one process for all whiteouts, one for all xattrs of a layer. */
async function makeWhiteouts(paths: string[]): Promise<void> {
  for (let i = 0; i < paths.length; i += 200) {
    await run('sh', ['-c', 'for p do mknod -m 000 -- "$p" c 0 0 || exit 1; done', 'sh', ...paths.slice(i, i + 200)]);
  }
}

/** `setfattr --restore` input: the getfattr dump format, values base64 (`0s`). */
export function xattrRestoreScript(items: Array<{ path: string; name: string; value: Buffer }>): string {
  const byPath = new Map<string, Array<{ name: string; value: Buffer }>>();
  for (const it of items) {
    let list = byPath.get(it.path);
    if (!list) byPath.set(it.path, (list = []));
    list.push(it);
  }
  const blocks: string[] = [];
  for (const [p, list] of byPath) {
    // getfattr escapes file names with octal sequences for special characters.
    const name = p.replace(/[\\\n\r=]|[^\x20-\x7e]/g, (c) => [...Buffer.from(c)].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join(''));
    blocks.push([`# file: ${name}`, ...list.map((x) => `${x.name}=0s${x.value.toString('base64')}`), ''].join('\n'));
  }
  return `${blocks.join('\n')}\n`;
}

export interface UnpackOptions {
  /** Apply owners from the archive (needs root). Default: when running as root. */
  chown?: boolean;
  /** Entry count and path depth bounds. Default: imageLimits() (the environment). */
  limits?: ImageLimits;
}

/** Unpack `items` into the existing empty directory `root`. */
export async function unpackLayer(items: AsyncIterable<TarItem>, rootDir: string, opts: UnpackOptions = {}): Promise<UnpackStats> {
  const chown = opts.chown ?? process.getuid?.() === 0;
  const limits = opts.limits ?? imageLimits();
  const root = path.resolve(rootDir);
  const stats: UnpackStats = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, whiteouts: 0, opaque: 0, bytes: 0, skipped: [] };
  /** What this layer has created, by relative path ('' is the root). */
  const kinds = new Map<string, Kind>([['', 'dir']]);
  /** Directories checked on disk (lstat: a real directory, no symlink) since the last removal. */
  const verified = new Set<string>(['']);
  // Applied at the end, by relative path; dropped when the object they belong to is removed.
  const dirTimes = new Map<string, number>();
  const whiteouts = new Set<string>();
  // Indexes by parent directory, so removing a subtree costs its own size, not the layer's.
  const children = new Map<string, Set<string>>();
  const whiteoutsIn = new Map<string, Set<string>>();
  const parentOf = (rel: string) => {
    const i = rel.lastIndexOf('/');
    return i < 0 ? '' : rel.slice(0, i);
  };
  const index = (m: Map<string, Set<string>>, rel: string) => {
    let set = m.get(parentOf(rel));
    if (!set) m.set(parentOf(rel), (set = new Set()));
    set.add(rel);
  };
  const setKind = (rel: string, kind: Kind) => {
    kinds.set(rel, kind);
    index(children, rel);
  };
  const addWhiteout = (rel: string) => {
    whiteouts.add(rel);
    index(whiteoutsIn, rel);
  };
  const opaque = new Set<string>();
  const xattrs = new Map<string, Array<{ name: string; value: Buffer }>>();
  const abs = (rel: string) => (rel === '' ? root : path.join(root, rel));
  const lstat = (rel: string) => fs.lstat(abs(rel)).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });

  /**
   * Check, component by component with lstat, that `dirParts` is a chain of
   * real directories of this layer under the root; create missing ones
   * (0755, root) when `create`. Never follows a symlink: one in the chain
   * refuses the layer.
   */
  const ensureDirs = async (dirParts: string[], entry: string, create: boolean) => {
    let rel = '';
    for (const part of dirParts) {
      rel = rel ? `${rel}/${part}` : part;
      if (verified.has(rel)) continue;
      const kind = kinds.get(rel);
      if (kind === 'symlink') throw new UnsafeLayerError(entry, `passes through the symlink ${JSON.stringify(rel)}`);
      if (kind === 'file') throw new UnsafeLayerError(entry, `has the regular file ${JSON.stringify(rel)} as a parent`);
      let st = await lstat(rel);
      if (!st) {
        if (!create || kind === 'dir') throw new UnsafeLayerError(entry, `needs the directory ${JSON.stringify(rel)}, which is not in this layer`);
        await fs.mkdir(abs(rel), { mode: 0o755 });
        setKind(rel, 'dir');
        st = await lstat(rel);
      } else if (kind !== 'dir') {
        throw new UnsafeLayerError(entry, `passes through ${JSON.stringify(rel)}, which this layer did not create`);
      }
      if (!st?.isDirectory()) throw new UnsafeLayerError(entry, `passes through ${JSON.stringify(rel)}, which is not a directory (${st?.isSymbolicLink() ? 'a symlink' : 'gone'})`);
      verified.add(rel);
    }
  };

  /** Remove what an earlier entry of this layer put at `rel` (tar: the last entry wins), with everything pending for it. */
  const clear = async (rel: string, keepDir: boolean, entry: string) => {
    const kind = kinds.get(rel);
    if (kind === undefined || (keepDir && kind === 'dir')) return;
    await ensureDirs(rel.split('/').slice(0, -1), entry, false);
    await fs.rm(abs(rel), { recursive: true, force: true });
    // Forget the subtree: what was created in it and everything pending for it.
    const stack = [rel];
    while (stack.length) {
      const k = stack.pop()!;
      kinds.delete(k);
      verified.delete(k);
      dirTimes.delete(k);
      xattrs.delete(k);
      opaque.delete(k);
      for (const w of whiteoutsIn.get(k) ?? []) whiteouts.delete(w);
      whiteoutsIn.delete(k);
      for (const c of children.get(k) ?? []) stack.push(c);
      children.delete(k);
    }
    children.get(parentOf(rel))?.delete(rel);
  };

  const applyMeta = async (rel: string, e: TarEntry, kind: Kind) => {
    const p = abs(rel);
    if (chown) await fs.lchown(p, e.uid, e.gid);
    if (kind !== 'symlink') await fs.chmod(p, e.mode); // after chown, which clears setuid bits
    for (const [name, value] of Object.entries(e.xattrs)) {
      if (kind !== 'symlink' && KEPT_XATTR(name)) {
        let list = xattrs.get(rel);
        if (!list) xattrs.set(rel, (list = []));
        list.push({ name, value });
      } else {
        stats.skipped.push({ path: `/${rel}`, reason: `xattr ${name} dropped` });
      }
    }
    if (kind === 'dir') dirTimes.set(rel, e.mtime);
    else await fs.lutimes(p, e.mtime, e.mtime);
  };

  let count = 0;
  for await (const { entry: e, body } of items) {
    if (++count > limits.maxEntries) throw limitError('maxEntries', limits, `a layer has more than ${limits.maxEntries} entries`);
    const parts = normalizeEntryPath(e.path);
    if (parts.length > limits.maxPathDepth) throw limitError('maxPathDepth', limits, `entry ${JSON.stringify(e.path.slice(0, 200))} is more than ${limits.maxPathDepth} directories deep`);
    const rel = parts.join('/');
    const base = parts[parts.length - 1] ?? '';
    const parent = parts.slice(0, -1);

    if (base.startsWith(WHITEOUT)) {
      await ensureDirs(parent, e.path, true);
      const dir = parent.join('/');
      if (base === OPAQUE) {
        opaque.add(dir);
      } else if (base.startsWith('.wh..wh.')) {
        stats.skipped.push({ path: `/${rel}`, reason: 'aufs metadata' });
      } else {
        const target = base.slice(WHITEOUT.length);
        if (target === '' || target === '.' || target === '..') throw new UnsafeLayerError(e.path, 'is a whiteout without a name');
        addWhiteout(dir ? `${dir}/${target}` : target);
      }
      continue;
    }

    if (rel === '') {
      // The root directory itself ("./"): only its metadata.
      if (e.type !== 'dir') throw new UnsafeLayerError(e.path, 'replaces the image root with a non-directory');
      await applyMeta('', e, 'dir');
      continue;
    }
    await ensureDirs(parent, e.path, true);

    switch (e.type) {
      case 'dir': {
        await clear(rel, true, e.path);
        if (kinds.get(rel) !== 'dir') {
          await fs.mkdir(abs(rel), { mode: 0o700 });
          setKind(rel, 'dir');
          stats.dirs++;
        }
        await applyMeta(rel, e, 'dir');
        break;
      }
      case 'file': {
        await clear(rel, false, e.path);
        // O_EXCL: never write through anything that might already be there (nor through a final symlink).
        const fh = await fs.open(abs(rel), 'wx', 0o600);
        try {
          for await (const chunk of body) {
            await fh.write(chunk);
            stats.bytes += chunk.length;
          }
        } finally {
          await fh.close();
        }
        setKind(rel, 'file');
        stats.files++;
        await applyMeta(rel, e, 'file');
        break;
      }
      case 'symlink': {
        await clear(rel, false, e.path);
        if (e.linkpath === '' || e.linkpath.includes('\0')) throw new UnsafeLayerError(e.path, 'is a symlink without a valid target');
        // Created as data, never followed by the unpacker (see ensureDirs).
        await fs.symlink(e.linkpath, abs(rel));
        setKind(rel, 'symlink');
        stats.symlinks++;
        await applyMeta(rel, e, 'symlink');
        break;
      }
      case 'hardlink': {
        const targetParts = normalizeEntryPath(e.linkpath);
        const target = targetParts.join('/');
        if (target === rel && (kinds.get(rel) === 'file' || kinds.get(rel) === 'symlink')) break;
        if (target === '' || target === rel || target.startsWith(`${rel}/`)) throw new UnsafeLayerError(e.path, `is a hard link to ${JSON.stringify(e.linkpath)}, which it would replace`);
        await clear(rel, false, e.path);
        const kind = kinds.get(target);
        if (kind !== 'file' && kind !== 'symlink') {
          throw new UnsafeLayerError(e.path, `is a hard link to ${JSON.stringify(e.linkpath)}, which is not a file of this layer`);
        }
        // The target's parents were checked when it was created; checked again: a later entry may have replaced one.
        await ensureDirs(targetParts.slice(0, -1), e.path, false);
        const st = await lstat(target);
        if (!st || !(kind === 'file' ? st.isFile() : st.isSymbolicLink())) throw new UnsafeLayerError(e.path, `is a hard link to ${JSON.stringify(e.linkpath)}, which is not what this layer created there`);
        await fs.link(abs(target), abs(rel));
        setKind(rel, kind);
        stats.hardlinks++;
        break;
      }
      case 'char':
        if (e.devmajor === 0 && e.devminor === 0) {
          // Already in overlay form (some exporters write whiteouts this way).
          await clear(rel, false, e.path);
          addWhiteout(rel);
          break;
        }
        stats.skipped.push({ path: `/${rel}`, reason: `character device ${e.devmajor}:${e.devminor} not created` });
        break;
      case 'block':
        stats.skipped.push({ path: `/${rel}`, reason: `block device ${e.devmajor}:${e.devminor} not created` });
        break;
      case 'fifo':
        stats.skipped.push({ path: `/${rel}`, reason: 'FIFO not created' });
        break;
    }
  }

  // Everything deferred is checked again, on disk and without following any symlink, right before it is applied.
  const checked = new Set<string>(['']);
  const recheck = async (rel: string, want: 'absent' | 'dir' | 'file-or-dir', what: string) => {
    const parts = rel === '' ? [] : rel.split('/');
    let cur = '';
    for (const part of parts.slice(0, -1)) {
      cur = cur ? `${cur}/${part}` : part;
      if (checked.has(cur)) continue;
      const st = await lstat(cur);
      if (!st?.isDirectory() || kinds.get(cur) !== 'dir') throw new UnsafeLayerError(`/${rel}`, `(${what}) would be applied through ${JSON.stringify(cur)}, which is not a directory of this layer`);
      checked.add(cur);
    }
    const st = await lstat(rel);
    const ok = want === 'absent' ? st === null : want === 'dir' ? !!st?.isDirectory() : !!st && (st.isDirectory() || st.isFile());
    if (!ok) throw new UnsafeLayerError(`/${rel}`, `(${what}) does not name ${want === 'absent' ? 'a free name' : want === 'dir' ? 'a directory' : 'a file or directory'} of this layer`);
  };

  // Whiteouts hide lower layers only: one for a name this layer itself created is moot.
  const wh = [...whiteouts].filter((w) => !kinds.has(w));
  for (const w of wh) await recheck(w, 'absent', 'a whiteout');
  await makeWhiteouts(wh.map(abs));
  stats.whiteouts = wh.length;
  // Directory times after whiteouts (creating entries changed them), deepest first.
  const times = [...dirTimes].sort((a, b) => b[0].length - a[0].length);
  for (const [rel] of times) await recheck(rel, 'dir', 'a directory time');
  for (const [rel, mtime] of times) await fs.lutimes(abs(rel), mtime, mtime);
  const restore: Array<{ path: string; name: string; value: Buffer }> = [];
  for (const [rel, list] of xattrs) {
    await recheck(rel, 'file-or-dir', 'an xattr');
    for (const x of list) restore.push({ path: abs(rel), ...x });
  }
  for (const dir of opaque) {
    await recheck(dir, 'dir', 'an opaque marker');
    restore.push({ path: abs(dir), name: 'trusted.overlay.opaque', value: Buffer.from('y') });
  }
  stats.opaque = opaque.size;
  // -h: an xattr is set on the entry itself, never on what a symlink there points at.
  if (restore.length) await run('setfattr', ['-h', '--restore=-'], { input: xattrRestoreScript(restore) });
  return stats;
}
