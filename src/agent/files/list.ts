/**
 * Directory listing (GET /files and GET /files/stream, spec §22.3).
 * Default: the direct children of `path`. `flatten` or `max_depth` > 1
 * walk recursively into a flat list; `nested` builds a tree with
 * `children`. Hidden files are always included. Entry count is capped so a
 * listing of `/` cannot exhaust memory; the reply then says `truncated`.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AgentError } from '../../core/agent-protocol/errors.ts';
import { boolParam, intParam, listParam, q } from '../../core/agent-protocol/params.ts';
import { entryFor, type FileEntry } from './entry.ts';
import { GlobSet } from './glob.ts';
import { extensionOf, isCodeFile } from './kinds.ts';
import { resolvePath } from './paths.ts';
import { walk, type WalkItem } from './walk.ts';

export const LIST_ENTRY_CAP = 100_000;
const HASH_MAX_BYTES = 50 * 1024 * 1024;
const CONTENT_MAX_FILE = 256 * 1024;
const DEFAULT_CONTENT_BUDGET = 2 * 1024 * 1024;
const STAT_BATCH = 64;

export interface ListOptions {
  root: string;
  nested: boolean;
  maxDepth: number;
  light: boolean;
  includeHash: boolean;
  includeContent: boolean;
  contentBudget: number;
  codeOnly: boolean;
  includeExt?: Set<string>;
  /** include_extensions: true adds `extension` even to light entries, false leaves it out; unset: full entries carry it. */
  includeExtensions?: boolean;
  pathFilter?: (rel: string, name: string) => boolean;
  ignore?: GlobSet;
  gitignore: boolean;
}

const GLOB_CHARS = /[*?[{]/;

export function parseListOptions(query: URLSearchParams): ListOptions {
  const nested = boolParam(q(query, 'nested'), 'nested') ?? false;
  const flatten = boolParam(q(query, 'flatten'), 'flatten') ?? false;
  const maxDepthParam = intParam(q(query, 'max_depth'), 'max_depth', 0, 1_000_000);
  const recursive = nested || flatten || (maxDepthParam !== undefined && maxDepthParam > 1);
  const maxDepth = recursive ? (maxDepthParam && maxDepthParam > 0 ? maxDepthParam : Infinity) : 1;
  const includeExt = listParam(q(query, 'include_ext'), 'include_ext');
  const ignore = listParam(q(query, 'ignore_patterns'), 'ignore_patterns');
  const filter = q(query, 'path_filter');
  const opts: ListOptions = {
    root: resolvePath(q(query, 'path') ?? q(query, 'dirPath'), 'path', '/'),
    nested: nested && !flatten,
    maxDepth,
    light: boolParam(q(query, 'light'), 'light') ?? false,
    includeHash: boolParam(q(query, 'include_hash'), 'include_hash') ?? false,
    includeContent: boolParam(q(query, 'include_content'), 'include_content') ?? false,
    contentBudget: intParam(q(query, 'max_content_budget'), 'max_content_budget', 0, 64 * 1024 * 1024) ?? DEFAULT_CONTENT_BUDGET,
    codeOnly: boolParam(q(query, 'code_files_only'), 'code_files_only') ?? false,
    gitignore: boolParam(q(query, 'use_gitignore'), 'use_gitignore') ?? false,
  };
  const includeExtensions = boolParam(q(query, 'include_extensions'), 'include_extensions');
  if (includeExtensions !== undefined) opts.includeExtensions = includeExtensions;
  if (includeExt) opts.includeExt = new Set(includeExt.map((e) => e.replace(/^\./, '').toLowerCase()));
  if (ignore) opts.ignore = new GlobSet(ignore);
  if (filter) {
    if (GLOB_CHARS.test(filter)) {
      const set = new GlobSet([filter]);
      opts.pathFilter = (rel, name) => set.matches(rel, name, false);
    } else {
      opts.pathFilter = (rel) => rel.includes(filter);
    }
  }
  return opts;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function readTextHead(path: string, size: number): Promise<string | undefined> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(size);
    const { bytesRead } = await fh.read(buf, 0, size, 0);
    const data = buf.subarray(0, bytesRead);
    return data.includes(0) ? undefined : data.toString('utf8');
  } finally {
    await fh.close();
  }
}

function keepFile(opts: ListOptions, item: WalkItem): boolean {
  if (opts.codeOnly && !isCodeFile(item.name)) return false;
  if (opts.includeExt && !opts.includeExt.has(extensionOf(item.name) ?? '')) return false;
  if (opts.pathFilter && !opts.pathFilter(item.rel, item.name)) return false;
  return true;
}

/** Builds one entry; `budget` is shared across the whole listing. */
async function buildEntry(opts: ListOptions, item: WalkItem, budget: { left: number }): Promise<FileEntry | undefined> {
  const entry = await buildFullEntry(opts, item, budget);
  if (!entry || opts.includeExtensions === undefined) return entry;
  if (!opts.includeExtensions) delete entry.extension;
  else if (entry.type !== 'directory' && entry.extension === undefined) {
    const ext = extensionOf(item.name);
    if (ext) entry.extension = ext;
  }
  return entry;
}

async function buildFullEntry(opts: ListOptions, item: WalkItem, budget: { left: number }): Promise<FileEntry | undefined> {
  if (opts.light) {
    const type = item.kind === 'directory' ? 'directory' : item.kind === 'symlink' ? 'symlink' : 'file';
    return { name: item.name, path: item.path, type };
  }
  let entry: FileEntry;
  try {
    entry = await entryFor(item.path, item.name);
  } catch {
    return undefined; // vanished between readdir and lstat
  }
  if (entry.type === 'file') {
    const size = entry.size ?? 0;
    if (opts.includeHash && size <= HASH_MAX_BYTES) {
      try { entry.hash = await sha256File(item.path); } catch { /* unreadable: no hash */ }
    }
    if (opts.includeContent && size <= CONTENT_MAX_FILE && size <= budget.left) {
      try {
        const text = await readTextHead(item.path, size);
        if (text !== undefined) {
          entry.content = text;
          budget.left -= size;
        }
      } catch { /* unreadable: no content */ }
    }
  }
  return entry;
}

/** Check the root once, with the contract's errors, before any streaming starts. */
export async function checkListRoot(root: string): Promise<void> {
  const st = await stat(root);
  if (!st.isDirectory()) throw new AgentError('not_directory', `Not a directory: ${root}`, { path: root });
}

/** Flat stream of entries in pre-order; stats are fetched in parallel batches. */
export async function* listEntries(opts: ListOptions): AsyncGenerator<FileEntry> {
  const budget = { left: opts.contentBudget };
  let batch: WalkItem[] = [];
  const flush = async (): Promise<FileEntry[]> => {
    const built = await Promise.all(batch.map((it) => buildEntry(opts, it, budget)));
    batch = [];
    return built.filter((e): e is FileEntry => e !== undefined);
  };
  for await (const item of walk(opts.root, {
    maxDepth: opts.maxDepth,
    includeHidden: true,
    ...(opts.ignore ? { exclude: opts.ignore } : {}),
    gitignore: opts.gitignore,
  })) {
    if (item.kind !== 'directory' && !keepFile(opts, item)) continue;
    batch.push(item);
    if (batch.length >= STAT_BATCH) yield* await flush();
  }
  if (batch.length > 0) yield* await flush();
}

export interface ListResult {
  entries: FileEntry[];
  count: number;
  truncated: boolean;
}

export async function listFiles(opts: ListOptions): Promise<ListResult> {
  await checkListRoot(opts.root);
  const top: FileEntry[] = [];
  const dirs = new Map<string, FileEntry>();
  let count = 0;
  let truncated = false;
  for await (const entry of listEntries(opts)) {
    if (count >= LIST_ENTRY_CAP) {
      truncated = true;
      break;
    }
    count++;
    if (!opts.nested) {
      top.push(entry);
      continue;
    }
    if (entry.type === 'directory') {
      entry.children = [];
      dirs.set(entry.path, entry);
    }
    const parent = dirs.get(dirname(entry.path));
    if (parent?.children) parent.children.push(entry);
    else top.push(entry);
  }
  return { entries: top, count, truncated };
}
