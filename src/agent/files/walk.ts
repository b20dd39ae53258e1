/**
 * Depth-first, pre-order tree walk shared by list, stream, search and
 * transfer. It holds one directory listing per level (never the whole tree),
 * yields in sorted order, and never follows symlinks (a link to `/` would
 * otherwise loop). Unreadable subdirectories are skipped, not fatal.
 */
import { readFileSync, type Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GlobSet } from './glob.ts';

export type WalkKind = 'file' | 'directory' | 'symlink' | 'other';

export interface WalkItem {
  path: string;
  /** Relative to the walk root, no leading slash. */
  rel: string;
  name: string;
  kind: WalkKind;
  /** 1 for the root's direct children. */
  depth: number;
}

export interface WalkOptions {
  /** 1 = direct children only; Infinity = whole tree. */
  maxDepth: number;
  includeHidden: boolean;
  /** Exclusions relative to the walk root. */
  exclude?: GlobSet;
  /** Honour .gitignore files found along the way (and skip `.git`). */
  gitignore?: boolean;
}

interface IgnoreLayer {
  /** Directory of the .gitignore, relative to the root ('' for the root). */
  base: string;
  set: GlobSet;
}

interface Frame {
  dir: string;
  rel: string;
  depth: number;
  entries: Dirent[];
  idx: number;
  ignores: IgnoreLayer[];
}

/** Kernel pseudo-filesystems: huge or infinite, never walked into. */
const VIRTUAL_DIRS = new Set(['/proc', '/sys', '/dev']);

function kindOf(d: Dirent): WalkKind {
  if (d.isDirectory()) return 'directory';
  if (d.isSymbolicLink()) return 'symlink';
  if (d.isFile()) return 'file';
  return 'other';
}

const byName = (a: Dirent, b: Dirent): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function loadGitignore(dir: string, rel: string, entries: Dirent[], parent: IgnoreLayer[]): IgnoreLayer[] {
  if (!entries.some((e) => e.name === '.gitignore' && e.isFile())) return parent;
  try {
    const lines = readFileSync(join(dir, '.gitignore'), 'utf8').split(/\r?\n/);
    const set = new GlobSet(lines);
    return set.empty ? parent : [...parent, { base: rel, set }];
  } catch {
    return parent;
  }
}

function gitIgnored(layers: IgnoreLayer[], rel: string, name: string, isDir: boolean): boolean {
  let verdict = false;
  for (const layer of layers) {
    const local = layer.base === '' ? rel : rel.slice(layer.base.length + 1);
    const d = layer.set.decide(local, name, isDir);
    if (d !== undefined) verdict = d;
  }
  return verdict;
}

async function listDir(dir: string): Promise<Dirent[] | undefined> {
  try {
    return (await readdir(dir, { withFileTypes: true })).sort(byName);
  } catch {
    return undefined;
  }
}

/** Walk `root` (a directory). Throws only when the root itself cannot be read. */
export async function* walk(root: string, opts: WalkOptions): AsyncGenerator<WalkItem> {
  const rootEntries = (await readdir(root, { withFileTypes: true })).sort(byName);
  const rootIgnores = opts.gitignore ? loadGitignore(root, '', rootEntries, []) : [];
  const stack: Frame[] = [{ dir: root, rel: '', depth: 1, entries: rootEntries, idx: 0, ignores: rootIgnores }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as Frame;
    if (top.idx >= top.entries.length) {
      stack.pop();
      continue;
    }
    const d = top.entries[top.idx++] as Dirent;
    const name = d.name;
    if (!opts.includeHidden && name.startsWith('.')) continue;
    const kind = kindOf(d);
    const isDir = kind === 'directory';
    const rel = top.rel === '' ? name : `${top.rel}/${name}`;
    if (opts.exclude && opts.exclude.matches(rel, name, isDir)) continue;
    if (opts.gitignore && ((isDir && name === '.git') || gitIgnored(top.ignores, rel, name, isDir))) continue;
    const path = top.dir === '/' ? `/${name}` : `${top.dir}/${name}`;
    yield { path, rel, name, kind, depth: top.depth };
    if (isDir && top.depth < opts.maxDepth && !VIRTUAL_DIRS.has(path)) {
      const entries = await listDir(path);
      if (entries) {
        const ignores = opts.gitignore ? loadGitignore(path, rel, entries, top.ignores) : top.ignores;
        stack.push({ dir: path, rel, depth: top.depth + 1, entries, idx: 0, ignores });
      }
    }
  }
}
