/** The contract's FileEntry / stat shapes, built from lstat (symlinks are reported, not followed). */
import type { Stats } from 'node:fs';
import { lstat, readlink, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { extensionOf, isCodeFile, modeString } from './kinds.ts';

export type EntryType = 'file' | 'directory' | 'symlink';

export interface FileEntry {
  name: string;
  path: string;
  type: EntryType;
  size?: number;
  modified?: string;
  mode?: string;
  extension?: string;
  symlink_target?: string;
  content?: string;
  hash?: string;
  children?: FileEntry[];
}

export function typeOf(st: Stats): EntryType {
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isDirectory()) return 'directory';
  return 'file';
}

export async function entryFor(path: string, name = basename(path) || '/'): Promise<FileEntry> {
  const st = await lstat(path);
  const entry: FileEntry = {
    name,
    path,
    type: typeOf(st),
    size: st.size,
    modified: st.mtime.toISOString(),
    mode: modeString(st.mode),
  };
  if (entry.type !== 'directory') {
    const ext = extensionOf(name);
    if (ext) entry.extension = ext;
  }
  if (entry.type === 'symlink') {
    try { entry.symlink_target = await readlink(path); } catch { /* raced away */ }
  }
  return entry;
}

/** GET /files/stat body (spec §22.3) plus a few extras (mode, uid, gid, target_type). */
export async function statBody(path: string): Promise<Record<string, unknown>> {
  const st = await lstat(path);
  const name = basename(path) || '/';
  const type = typeOf(st);
  const body: Record<string, unknown> = {
    success: true,
    path,
    name,
    type,
    size: st.size,
    modified: st.mtime.toISOString(),
    created: st.birthtime.toISOString(),
    accessed: st.atime.toISOString(),
    permissions: modeString(st.mode),
    mode: modeString(st.mode),
    uid: st.uid,
    gid: st.gid,
    is_code: type === 'file' && isCodeFile(name),
  };
  const ext = type !== 'directory' ? extensionOf(name) : undefined;
  if (ext) body.extension = ext;
  if (type === 'symlink') {
    body.symlink_target = await readlink(path);
    try {
      body.target_type = typeOf(await stat(path));
    } catch {
      body.target_type = 'missing';
    }
  }
  return body;
}
