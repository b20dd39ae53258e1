/**
 * The build context: a directory (the CLI's DIR, or an uploaded tar
 * unpacked by the safe unpacker) read once, `.dockerignore` applied, bounded
 * in bytes and files. COPY/ADD sources are chosen from it here, and nothing
 * outside it can be named: `..` and absolute paths are taken relative to the
 * context root (as Docker does) and never leave it, and a source that goes
 * through a symlink pointing outside the context is refused with its line.
 * Symlinks inside copied directories are copied as symlinks, never followed.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { DockerfileError, cleanContextPath, isIgnored, parseDockerignore, type IgnoreRule } from '../../../core/dockerfile/index.ts';
import { ValidationFailed } from '../../../core/errors.ts';

export interface ContextEntry {
  rel: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  size: number;
  /** Symlink target as written. */
  target?: string;
}

export interface BuildContext {
  root: string;
  /** Every non-ignored entry, by context-relative path ('' is the root). */
  entries: Map<string, ContextEntry>;
  bytes: number;
}

export interface ContextLimits {
  maxBytes: number;
  maxFiles: number;
}

export function contextLimits(env: NodeJS.ProcessEnv = process.env): ContextLimits {
  const n = (v: string | undefined, d: number) => (v && Number.isFinite(Number(v)) && Number(v) > 0 ? Number(v) : d);
  return { maxBytes: n(env.HEARTH_BUILD_MAX_CONTEXT_BYTES, 512 * 1024 * 1024), maxFiles: n(env.HEARTH_BUILD_MAX_CONTEXT_FILES, 100_000) };
}

export class ContextTooLargeError extends ValidationFailed {
  constructor(what: string, limit: string) {
    super('context', `the build context ${what}, more than the limit of ${limit}`, 'exclude what the build does not need in .dockerignore (node_modules, .git, build output), or raise HEARTH_BUILD_MAX_CONTEXT_BYTES / _FILES');
    this.name = 'ContextTooLargeError';
  }
}

/** Read the context directory with its .dockerignore. The Dockerfile and .dockerignore themselves are always readable. */
export async function readContext(root: string, limits: ContextLimits = contextLimits()): Promise<BuildContext> {
  const abs = path.resolve(root);
  const st = await fs.stat(abs).catch(() => undefined);
  if (!st?.isDirectory()) throw new ValidationFailed('context', `build context ${root} is not a directory`);
  const ignoreText = await fs.readFile(path.join(abs, '.dockerignore'), 'utf8').catch(() => '');
  const rules: IgnoreRule[] = parseDockerignore(ignoreText);
  const entries = new Map<string, ContextEntry>([['', { rel: '', type: 'dir', mode: st.mode & 0o7777, size: 0 }]]);
  let bytes = 0;
  const walk = async (relDir: string): Promise<void> => {
    const names = (await fs.readdir(path.join(abs, relDir))).sort();
    for (const name of names) {
      const rel = relDir ? `${relDir}/${name}` : name;
      const ignored = isIgnored(rules, rel);
      const l = await fs.lstat(path.join(abs, rel));
      if (ignored && !l.isDirectory()) continue;
      if (l.isDirectory()) {
        // An ignored directory is still walked only if a later `!` rule may bring something inside back.
        if (ignored && !rules.some((r) => r.negate)) continue;
        if (!ignored) entries.set(rel, { rel, type: 'dir', mode: l.mode & 0o7777, size: 0 });
        await walk(rel);
        continue;
      }
      if (entries.size >= limits.maxFiles) throw new ContextTooLargeError(`has more than ${limits.maxFiles} files`, `${limits.maxFiles} files`);
      if (l.isSymbolicLink()) entries.set(rel, { rel, type: 'symlink', mode: 0o777, size: 0, target: await fs.readlink(path.join(abs, rel)) });
      else if (l.isFile()) {
        bytes += l.size;
        if (bytes > limits.maxBytes) throw new ContextTooLargeError(`is more than ${limits.maxBytes} bytes`, `${limits.maxBytes} bytes`);
        entries.set(rel, { rel, type: 'file', mode: l.mode & 0o7777, size: l.size });
      }
      // Sockets, fifos and devices are not part of a build context.
    }
  };
  await walk('');
  // Parents of re-included entries exist even when their directory was ignored.
  for (const rel of [...entries.keys()]) {
    for (let p = path.posix.dirname(rel); p !== '.' && p !== '' && !entries.has(p); p = path.posix.dirname(p)) entries.set(p, { rel: p, type: 'dir', mode: 0o755, size: 0 });
  }
  return { root: abs, entries, bytes };
}


function globRe(glob: string): RegExp {
  return new RegExp(`^${glob.split('').map((c) => (c === '*' ? '[^/]*' : c === '?' ? '[^/]' : /[.+^${}()|[\]\\]/.test(c) ? `\\${c}` : c)).join('')}$`);
}

/**
 * The context entries one source names: a path or a glob (`*`, `?`), with a
 * top-level symlink followed only when its target stays in the context.
 * Throws DockerfileError with the line when the source is missing or escapes.
 */
export function selectSource(ctx: BuildContext, source: string, line: number): ContextEntry[] {
  const rel = cleanContextPath(source);
  const ancestors = rel.split('/').slice(0, -1);
  for (let i = 0; i < ancestors.length; i++) {
    const a = ancestors.slice(0, i + 1).join('/');
    if (ctx.entries.get(a)?.type === 'symlink') throw new DockerfileError(line, `COPY source ${source} goes through the symlink ${a}, which Hearth does not follow (it could point outside the build context)`);
  }
  let found: ContextEntry[];
  if (/[*?]/.test(rel)) {
    const re = globRe(rel);
    found = [...ctx.entries.values()].filter((e) => e.rel !== '' && re.test(e.rel));
  } else {
    const e = ctx.entries.get(rel);
    found = e ? [e] : [];
  }
  if (found.length === 0) throw new DockerfileError(line, `COPY source ${source} is not in the build context (missing, or excluded by .dockerignore)`);
  return found.map((e) => {
    if (e.type !== 'symlink') return e;
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(e.rel), e.target!));
    if (e.target!.startsWith('/') || target === '..' || target.startsWith('../')) {
      throw new DockerfileError(line, `COPY source ${e.rel} is a symlink to ${e.target}, outside the build context`);
    }
    const t = ctx.entries.get(target);
    if (!t || t.type === 'symlink') throw new DockerfileError(line, `COPY source ${e.rel} is a symlink to ${e.target}, which is not a file or directory in the build context`);
    return { ...t, rel: t.rel };
  });
}

/** Every entry at or under `rel` (a dir's whole tree), sorted. */
export function treeOf(ctx: BuildContext, rel: string): ContextEntry[] {
  const out: ContextEntry[] = [];
  for (const e of ctx.entries.values()) if (e.rel === rel || (rel === '' ? e.rel !== '' : e.rel.startsWith(`${rel}/`))) out.push(e);
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

/** sha256 over what a COPY of these entries would produce: paths, types, modes, symlink targets and file bytes. */
export async function hashEntries(ctx: BuildContext, roots: ContextEntry[]): Promise<string> {
  const h = createHash('sha256');
  for (const r of roots) {
    for (const e of treeOf(ctx, r.rel)) {
      h.update(`${r.rel}\0${e.rel}\0${e.type}\0${e.mode.toString(8)}\0${e.target ?? ''}\0`);
      if (e.type === 'file') h.update(await fs.readFile(path.join(ctx.root, e.rel)));
    }
  }
  return `sha256:${h.digest('hex')}`;
}
