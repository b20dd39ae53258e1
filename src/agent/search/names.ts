/** File-name search (GET /files/search/files): substring, or a glob when the query has glob characters. */
import { AgentError } from '../../core/agent-protocol/errors.ts';
import { GlobSet } from '../files/glob.ts';
import { walk } from '../files/walk.ts';
import { stat } from 'node:fs/promises';
import type { CommonSearch } from './options.ts';

export interface NameResult {
  files: string[];
  total_files: number;
  capped: boolean;
  timed_out: boolean;
}

const GLOB_CHARS = /[*?[{]/;

export async function searchNames(s: CommonSearch): Promise<NameResult> {
  const st = await stat(s.root);
  if (!st.isDirectory()) throw new AgentError('not_directory', `Not a directory: ${s.root}`, { path: s.root });
  let match: (name: string, rel: string) => boolean;
  if (GLOB_CHARS.test(s.query)) {
    const set = new GlobSet([s.caseSensitive ? s.query : s.query.toLowerCase()]);
    match = (name, rel) => (s.caseSensitive ? set.matches(rel, name, false) : set.matches(rel.toLowerCase(), name.toLowerCase(), false));
  } else {
    const needle = s.caseSensitive ? s.query : s.query.toLowerCase();
    match = (name) => (s.caseSensitive ? name : name.toLowerCase()).includes(needle);
  }
  const deadline = Date.now() + s.timeoutMs;
  const out: NameResult = { files: [], total_files: 0, capped: false, timed_out: false };
  let seen = 0;
  for await (const item of walk(s.root, {
    maxDepth: Infinity,
    includeHidden: s.includeHidden,
    gitignore: s.gitignore,
    ...(s.ignore ? { exclude: s.ignore } : {}),
  })) {
    if ((++seen & 1023) === 0 && Date.now() > deadline) {
      out.timed_out = true;
      break;
    }
    if (item.kind === 'directory' || !match(item.name, item.rel)) continue;
    if (out.files.length >= s.maxResults) {
      out.capped = true;
      break;
    }
    out.files.push(item.path);
  }
  out.total_files = out.files.length;
  return out;
}
