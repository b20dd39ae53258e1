/**
 * What a container workspace's disk holds, read from the disk itself: the
 * file system's own counters (statfs while it is mounted, the ext4
 * superblock of the image while it is not), the files of the overlay's
 * writable layer, and a flush of the mounted file system.
 *
 * The upper dir is tenant-controlled: the walk never follows a link
 * (lstat, readdir without following), is bounded in depth and entries, and
 * reports names relative to the workspace's root.
 */
import { lstat, readdir, statfs, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hostRun } from '../../exec.ts';
import { diskPaths, loopDeviceOf, withDisk } from './disk.ts';
import type { DiskUsage, OverlayEntry, OverlayListing } from '../driver.ts';

const MIB = 1024 * 1024;


function usage(sizeMb: number, blockSize: number, blocks: number, free: number, inodes: number, freeInodes: number, source: DiskUsage['source'], pending: number | null): DiskUsage {
  const total = blocks * blockSize;
  const freeBytes = free * blockSize;
  const used = Math.max(0, total - freeBytes);
  return {
    size_mb: sizeMb, total_bytes: total, used_bytes: used, free_bytes: freeBytes,
    used_mb: Math.round((used / MIB) * 10) / 10, free_mb: Math.round((freeBytes / MIB) * 10) / 10,
    used_percent: total > 0 ? Math.round((used / total) * 1000) / 10 : 0,
    inodes_total: inodes, inodes_used: Math.max(0, inodes - freeInodes), source, pending_size_mb: pending,
  };
}

/** `dumpe2fs -h` fields of an unmounted image. */
export function parseSuperblock(text: string): { blockSize: number; blocks: number; free: number; inodes: number; freeInodes: number } {
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  const r = { blockSize: field('Block size'), blocks: field('Block count'), free: field('Free blocks'), inodes: field('Inode count'), freeInodes: field('Free inodes') };
  if (Object.values(r).some((v) => !Number.isFinite(v))) throw new Error('dumpe2fs printed no ext4 superblock');
  return r;
}

export async function containerDiskUsage(dir: string, sizeMb: number): Promise<DiskUsage> {
  const d = diskPaths(dir);
  const pendingText = await stat(`${d.image}.grow`).then(() => true, () => false);
  const pending = pendingText ? sizeMb : null;
  if (await loopDeviceOf(d.mount)) {
    const s = await statfs(d.mount);
    return usage(sizeMb, s.bsize, s.blocks, s.bfree, s.files, s.ffree, 'statfs', pending);
  }
  if (!(await stat(d.image).then(() => true, () => false))) return usage(sizeMb, 4096, 0, 0, 0, 0, 'none', pending);
  const { stdout } = await hostRun('dumpe2fs', ['-h', d.image], { timeoutMs: 30_000 });
  const sb = parseSuperblock(stdout);
  return usage(sizeMb, sb.blockSize, sb.blocks, sb.free, sb.inodes, sb.freeInodes, 'superblock', pending);
}


const MAX_DEPTH = 64;

/** Files of the writable layer (what the workspace changed over its image), up to `limit` entries. */
export async function overlayFiles(dir: string, sizeMb: number, limit: number, running: boolean): Promise<OverlayListing> {
  const walk = async (upper: string): Promise<OverlayListing> => {
    const files: OverlayEntry[] = [];
    let total = 0;
    const visit = async (abs: string, rel: string, depth: number): Promise<void> => {
      const entries = await readdir(abs, { withFileTypes: true }).catch(() => []);
      entries.sort((a, b) => (a.name < b.name ? -1 : 1));
      for (const e of entries) {
        const p = join(abs, e.name);
        const st = await lstat(p).catch(() => null);
        if (!st) continue;
        total++;
        // overlayfs marks a deleted lower file with a 0:0 character device.
        const type: OverlayEntry['type'] = st.isCharacterDevice() && st.rdev === 0 ? 'deleted' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
        if (files.length < limit) files.push({ path: `${rel}/${e.name}`, type, size: type === 'file' ? st.size : 0, modified: st.mtime.toISOString() });
        if (type === 'dir' && depth < MAX_DEPTH) await visit(p, `${rel}/${e.name}`, depth + 1);
      }
    };
    await visit(upper, '', 0);
    return { files, total, truncated: total > files.length };
  };
  const d = diskPaths(dir);
  if (running || (await loopDeviceOf(d.mount))) return walk(d.upper);
  if (!(await stat(d.image).then(() => true, () => false))) return { files: [], total: 0, truncated: false };
  return withDisk(dir, sizeMb, (paths) => walk(paths.upper));
}

/** Flush the mounted disk's dirty pages to its image (syncfs). False when it is not mounted (nothing buffered). */
export async function syncContainerDisk(dir: string): Promise<boolean> {
  const d = diskPaths(dir);
  if (!(await loopDeviceOf(d.mount))) return false;
  await hostRun('sync', ['-f', d.mount], { timeoutMs: 120_000 });
  return true;
}
