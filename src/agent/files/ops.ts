/** mkdir, delete, and the move/copy extensions (spec §22.3 + [REC]). */
import { chmod, cp, lstat, mkdir, rename, rm, rmdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AgentError } from '../../core/agent-protocol/errors.ts';

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Creates parents; an existing directory is success (idempotent), a file in the way is a conflict. */
export async function makeDir(path: string, mode?: number): Promise<void> {
  await mkdir(path, { recursive: true, ...(mode !== undefined ? { mode } : {}) });
  const st = await lstat(path);
  if (!st.isDirectory()) throw new AgentError('already_exists', `Exists and is not a directory: ${path}`, { path });
  if (mode !== undefined) await chmod(path, mode);
}

export async function deletePath(path: string, recursive: boolean): Promise<void> {
  if (path === '/') throw new AgentError('bad_request', 'Refusing to delete /');
  const st = await lstat(path); // 404 when absent: deleting nothing is reported
  if (st.isDirectory() && !recursive) {
    await rmdir(path); // ENOTEMPTY → not_empty
    return;
  }
  await rm(path, { recursive: true, force: false });
}

function isInside(parent: string, child: string): boolean {
  return child === parent || child.startsWith(parent === '/' ? '/' : `${parent}/`);
}

async function prepareTarget(from: string, to: string, overwrite: boolean): Promise<void> {
  await lstat(from);
  if (from === to) throw new AgentError('bad_request', 'Source and destination are the same path');
  if (isInside(from, to)) throw new AgentError('bad_request', `Cannot put ${from} inside itself (${to})`);
  if (await exists(to)) {
    if (!overwrite) {
      throw new AgentError('already_exists', `Destination exists: ${to}; pass overwrite:true to replace it`, { path: to });
    }
    await rm(to, { recursive: true, force: true });
  }
  await mkdir(dirname(to), { recursive: true });
}

export async function movePath(from: string, to: string, overwrite: boolean): Promise<void> {
  await prepareTarget(from, to, overwrite);
  try {
    await rename(from, to);
  } catch (err) {
    // Across filesystems (a volume mount): copy then delete.
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await cp(from, to, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true, errorOnExist: true, force: false });
    await rm(from, { recursive: true, force: true });
  }
}

export async function copyPath(from: string, to: string, overwrite: boolean): Promise<void> {
  await prepareTarget(from, to, overwrite);
  await cp(from, to, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true, errorOnExist: true, force: false });
}
