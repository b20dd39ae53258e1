/**
 * Build-once directories: an artifact is built into a scratch dir on the same
 * filesystem and renamed into place, so its final path exists only when it is
 * complete. A final path that exists is a cache hit (logged CACHED by callers).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

export interface BuiltDir {
  dir: string;
  cached: boolean;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** A fresh scratch path under `tmpRoot`, named after the owner pid so stale ones can be reaped. */
export async function scratchDir(tmpRoot: string, label: string): Promise<string> {
  await fs.mkdir(tmpRoot, { recursive: true });
  const dir = path.join(tmpRoot, `${label}.${process.pid}.${randomBytes(4).toString('hex')}`);
  await fs.mkdir(dir, { mode: 0o755 });
  return dir;
}

/**
 * Return `final` if it exists; otherwise run `build(tmp)` and rename tmp to
 * `final`. If another process finished the same artifact first, its copy wins
 * and ours is discarded (same inputs, same content).
 */
export async function buildOnce(final: string, tmpRoot: string, build: (tmp: string) => Promise<void>): Promise<BuiltDir> {
  if (await exists(final)) return { dir: final, cached: true };
  const tmp = await scratchDir(tmpRoot, path.basename(final));
  try {
    await build(tmp);
    await fs.mkdir(path.dirname(final), { recursive: true });
    try {
      await fs.rename(tmp, final);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await exists(final))) {
        await fs.rm(tmp, { recursive: true, force: true });
        return { dir: final, cached: true };
      }
      throw e;
    }
    return { dir: final, cached: false };
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw e;
  }
}

/** Write a file atomically (tmp file + rename). */
export async function writeFileAtomic(file: string, data: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await fs.writeFile(tmp, data);
  await fs.rename(tmp, file);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove scratch dirs left by builds whose process is gone. Returns what was removed. */
export async function reapStaleScratch(tmpRoot: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(tmpRoot);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = /\.(\d+)\.[0-9a-f]{8}$/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    await fs.rm(path.join(tmpRoot, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
