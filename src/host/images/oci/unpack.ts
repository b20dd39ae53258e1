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
 * (`../`) is refused, and so is any entry whose parent is not a directory of
 * this layer (a symlink, absolute or relative, is never traversed). So the
 * unpacker only ever writes inside `root`, whatever the archive says. A
 * refused layer throws UnsafeLayerError; the caller discards the directory.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { run } from '../exec.ts';
import { ValidationFailed } from '../../../core/errors.ts';
import type { TarEntry, TarItem } from './tar.ts';

export class UnsafeLayerError extends ValidationFailed {
  constructor(readonly entry: string, reason: string) {
    super('image', `unsafe image layer: entry ${JSON.stringify(entry)} ${reason}`, 'the image archive is malformed or hostile; nothing was unpacked');
    this.name = 'UnsafeLayerError';
  }
}

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
    await run('sh', ['-c', 'for p do mknod -m 000 "$p" c 0 0 || exit 1; done', 'sh', ...paths.slice(i, i + 200)]);
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
}

/** Unpack `items` into the existing empty directory `root`. */
export async function unpackLayer(items: AsyncIterable<TarItem>, root: string, opts: UnpackOptions = {}): Promise<UnpackStats> {
  const chown = opts.chown ?? process.getuid?.() === 0;
  const stats: UnpackStats = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, whiteouts: 0, opaque: 0, bytes: 0, skipped: [] };
  /** What this layer has created, by relative path ('' is the root). */
  const kinds = new Map<string, Kind>([['', 'dir']]);
  const dirTimes: Array<{ rel: string; mtime: number }> = [];
  const whiteouts = new Set<string>();
  const opaque = new Set<string>();
  const xattrs: Array<{ path: string; name: string; value: Buffer }> = [];
  const abs = (rel: string) => (rel === '' ? root : path.join(root, rel));

  /** Make sure every parent of `parts` is a directory of this layer; create missing ones (0755, root). */
  const ensureParents = async (parts: string[], entry: string) => {
    let rel = '';
    for (let i = 0; i < parts.length - 1; i++) {
      rel = rel ? `${rel}/${parts[i]}` : parts[i]!;
      const kind = kinds.get(rel);
      if (kind === 'dir') continue;
      if (kind === 'symlink') throw new UnsafeLayerError(entry, `passes through the symlink ${JSON.stringify(rel)}`);
      if (kind === 'file') throw new UnsafeLayerError(entry, `has the regular file ${JSON.stringify(rel)} as a parent`);
      await fs.mkdir(abs(rel), { mode: 0o755 });
      kinds.set(rel, 'dir');
    }
  };

  /** Remove what an earlier entry of this layer put at `rel` (tar: the last entry wins). */
  const clear = async (rel: string, keepDir: boolean) => {
    const kind = kinds.get(rel);
    if (kind === undefined || (keepDir && kind === 'dir')) return;
    await fs.rm(abs(rel), { recursive: true, force: true });
    for (const k of [...kinds.keys()]) if (k === rel || k.startsWith(`${rel}/`)) kinds.delete(k);
  };

  const applyMeta = async (rel: string, e: TarEntry, kind: Kind) => {
    const p = abs(rel);
    if (chown) await fs.lchown(p, e.uid, e.gid);
    if (kind !== 'symlink') await fs.chmod(p, e.mode); // after chown, which clears setuid bits
    for (const [name, value] of Object.entries(e.xattrs)) {
      if (kind !== 'symlink' && KEPT_XATTR(name)) xattrs.push({ path: p, name, value });
      else stats.skipped.push({ path: `/${rel}`, reason: `xattr ${name} dropped` });
    }
    if (kind === 'dir') dirTimes.push({ rel, mtime: e.mtime });
    else await fs.lutimes(p, e.mtime, e.mtime);
  };

  for await (const { entry: e, body } of items) {
    const parts = normalizeEntryPath(e.path);
    const rel = parts.join('/');
    const base = parts[parts.length - 1] ?? '';

    if (base.startsWith(WHITEOUT)) {
      await ensureParents(parts, e.path);
      const dir = parts.slice(0, -1).join('/');
      if (base === OPAQUE) {
        opaque.add(dir);
      } else if (base.startsWith('.wh..wh.')) {
        stats.skipped.push({ path: `/${rel}`, reason: 'aufs metadata' });
      } else {
        const target = base.slice(WHITEOUT.length);
        if (target === '' || target === '.' || target === '..') throw new UnsafeLayerError(e.path, 'is a whiteout without a name');
        whiteouts.add(dir ? `${dir}/${target}` : target);
      }
      continue;
    }

    if (rel === '') {
      // The root directory itself ("./"): only its metadata.
      if (e.type !== 'dir') throw new UnsafeLayerError(e.path, 'replaces the image root with a non-directory');
      await applyMeta('', e, 'dir');
      continue;
    }
    await ensureParents(parts, e.path);

    switch (e.type) {
      case 'dir': {
        await clear(rel, true);
        if (kinds.get(rel) !== 'dir') {
          await fs.mkdir(abs(rel), { mode: 0o700 });
          kinds.set(rel, 'dir');
          stats.dirs++;
        }
        await applyMeta(rel, e, 'dir');
        break;
      }
      case 'file': {
        await clear(rel, false);
        // O_EXCL: never write through anything that might already be there.
        const fh = await fs.open(abs(rel), 'wx', 0o600);
        try {
          for await (const chunk of body) {
            await fh.write(chunk);
            stats.bytes += chunk.length;
          }
        } finally {
          await fh.close();
        }
        kinds.set(rel, 'file');
        stats.files++;
        await applyMeta(rel, e, 'file');
        break;
      }
      case 'symlink': {
        await clear(rel, false);
        if (e.linkpath === '' || e.linkpath.includes('\0')) throw new UnsafeLayerError(e.path, 'is a symlink without a valid target');
        // Created as data, never followed by the unpacker (see ensureParents).
        await fs.symlink(e.linkpath, abs(rel));
        kinds.set(rel, 'symlink');
        stats.symlinks++;
        await applyMeta(rel, e, 'symlink');
        break;
      }
      case 'hardlink': {
        const targetParts = normalizeEntryPath(e.linkpath);
        const target = targetParts.join('/');
        const kind = kinds.get(target);
        if (kind !== 'file' && kind !== 'symlink') {
          throw new UnsafeLayerError(e.path, `is a hard link to ${JSON.stringify(e.linkpath)}, which is not a file of this layer`);
        }
        // The target's own parents were checked when it was created; recheck: a later entry may have replaced one.
        await ensureParents(targetParts, e.path);
        if (target === rel) break;
        await clear(rel, false);
        await fs.link(abs(target), abs(rel));
        kinds.set(rel, kind);
        stats.hardlinks++;
        break;
      }
      case 'char':
        if (e.devmajor === 0 && e.devminor === 0) {
          // Already in overlay form (some exporters write whiteouts this way).
          await clear(rel, false);
          whiteouts.add(rel);
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

  // Whiteouts hide lower layers only: one for a name this layer itself created is moot.
  const wh = [...whiteouts].filter((w) => !kinds.has(w)).map(abs);
  await makeWhiteouts(wh);
  stats.whiteouts = wh.length;
  for (const dir of opaque) xattrs.push({ path: abs(dir), name: 'trusted.overlay.opaque', value: Buffer.from('y') });
  stats.opaque = opaque.size;
  if (xattrs.length) await run('setfattr', ['--restore=-'], { input: xattrRestoreScript(xattrs) });
  // Directory times last, deepest first: creating children changed them.
  dirTimes.sort((a, b) => b.rel.length - a.rel.length);
  for (const d of dirTimes) await fs.utimes(abs(d.rel), d.mtime, d.mtime);
  return stats;
}
