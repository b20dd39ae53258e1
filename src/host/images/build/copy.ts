/**
 * The one copier of COPY/ADD: reads a source tree without following any
 * symlink (they are copied as symlinks) and writes into a fresh layer tree
 * checking, at every entry, that no directory on the way is a symlink — so
 * a symlink an earlier source created (`x -> /etc`) can never make a later
 * write land on the host (`x/passwd`).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { DockerfileError } from '../../../core/dockerfile/index.ts';

export interface Owner {
  uid: number;
  gid: number;
}

/** `root/rel` after checking that nothing between root and it is a symlink (the last component may not exist yet). */
export async function safeTarget(root: string, rel: string, line: number): Promise<string> {
  const parts = rel.split('/').filter((p) => p && p !== '.');
  if (parts.includes('..')) throw new DockerfileError(line, `destination ${rel} has ..`);
  let cur = root;
  for (let i = 0; i < parts.length; i++) {
    cur = path.join(cur, parts[i]!);
    const st = await fs.lstat(cur).catch(() => undefined);
    if (!st) continue;
    if (st.isSymbolicLink() && i < parts.length - 1) throw new DockerfileError(line, `destination /${parts.slice(0, i + 1).join('/')} is a symlink this step created; Hearth does not write through it`);
  }
  return cur;
}

async function mkdirs(root: string, rel: string, line: number, owner: Owner | null): Promise<void> {
  const parts = rel.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const p = await safeTarget(root, parts.slice(0, i).join('/'), line);
    const st = await fs.lstat(p).catch(() => undefined);
    if (st?.isDirectory()) continue;
    if (st) throw new DockerfileError(line, `destination /${parts.slice(0, i).join('/')} is not a directory`);
    await fs.mkdir(p, { mode: 0o755 });
    if (owner && i === parts.length) await fs.lchown(p, owner.uid, owner.gid);
  }
}

/**
 * Copy `src` (a host path, lstat'ed) to `destRel` inside `layerRoot`.
 * Directories copy their contents (Docker's rule); `chmod` applies to files and dirs.
 */
export async function copyTree(src: string, layerRoot: string, destRel: string, o: { line: number; owner: Owner | null; chmod: number | null; include?: (rel: string) => boolean }): Promise<number> {
  let count = 0;
  const visit = async (from: string, toRel: string, rel: string): Promise<void> => {
    const st = await fs.lstat(from);
    const to = await safeTarget(layerRoot, toRel, o.line);
    const own = async () => {
      const uid = o.owner?.uid ?? 0;
      const gid = o.owner?.gid ?? 0;
      await fs.lchown(to, uid, gid);
    };
    if (st.isDirectory()) {
      await mkdirs(layerRoot, path.posix.dirname(toRel), o.line, null);
      const exist = await fs.lstat(to).catch(() => undefined);
      if (exist && !exist.isDirectory()) await fs.rm(to, { force: true });
      if (!exist?.isDirectory()) await fs.mkdir(to);
      await fs.chmod(to, o.chmod ?? st.mode & 0o7777);
      await own();
      for (const name of (await fs.readdir(from)).sort()) {
        const childRel = rel ? `${rel}/${name}` : name;
        if (o.include && !o.include(childRel)) continue;
        await visit(path.join(from, name), `${toRel}/${name}`, childRel);
      }
      count++;
      return;
    }
    await mkdirs(layerRoot, path.posix.dirname(toRel), o.line, null);
    await fs.rm(to, { recursive: true, force: true });
    if (st.isSymbolicLink()) {
      await fs.symlink(await fs.readlink(from), to);
    } else if (st.isFile()) {
      await fs.copyFile(from, to);
      await fs.chmod(to, o.chmod ?? st.mode & 0o7777);
    } else {
      return; // devices, fifos, sockets are not copied
    }
    await own();
    count++;
  };
  await visit(src, destRel, '');
  return count;
}
