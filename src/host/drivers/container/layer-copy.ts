/**
 * Copying writable layers for snapshots. `cp -a` keeps exactly what overlay
 * needs: owners, modes, times, hard links, symlinks, whiteouts (0/0 char
 * devices, which only root can create) and xattrs including
 * `trusted.overlay.*` (opaque dirs, origins). `--reflink=auto` makes the copy
 * instant on filesystems that share extents (xfs, btrfs) and a plain copy
 * elsewhere (ext4).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { hostRun } from '../../exec.ts';

/** Copy the tree `src` to `dst` (which must not exist). */
export async function copyTree(src: string, dst: string): Promise<void> {
  await hostRun('cp', ['-a', '--reflink=auto', '--no-target-directory', src, dst], { timeoutMs: 30 * 60_000 });
}

/** Bytes of regular files in a tree (hard links counted once). */
export async function treeBytes(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (p: string) => {
    const entries = await fs.readdir(p, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const full = path.join(p, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isFile()) {
        const st = await fs.lstat(full).catch(() => null);
        if (!st) continue;
        const key = `${st.dev}:${st.ino}`;
        if (st.nlink > 1) {
          if (seen.has(key)) continue;
          seen.add(key);
        }
        total += st.size;
      }
    }
  };
  await walk(dir);
  return total;
}
