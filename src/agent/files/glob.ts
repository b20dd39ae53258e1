/**
 * Glob patterns with gitignore semantics (a small, dependency-free subset
 * used by list ignore_patterns, search, watchers and transfer excludes):
 * - a pattern without `/` matches a name at any depth (`node_modules`, `*.log`);
 * - a pattern with `/` matches the path relative to the root (`src/*.ts`,
 *   a leading `/` only anchors);
 * - a trailing `/` matches directories only;
 * - `*` and `?` stay inside one segment, `**` crosses segments, `[a-z]`
 *   classes and `{a,b}` alternatives work; `\` escapes;
 * - `!pattern` re-includes (gitignore negation; last matching rule wins).
 */

export interface GlobRule {
  regex: RegExp;
  negated: boolean;
  dirOnly: boolean;
  /** Matched against the relative path instead of the name. */
  anchored: boolean;
}

const REGEX_SPECIAL = /[.+^${}()|[\]\\/]/g;

export function globToRegExpSource(glob: string): string {
  let re = '';
  let braceDepth = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        while (glob[i + 1] === '*') i++;
        if (glob[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else {
          re += '.*';
        }
      } else {
        re += '[^/]*';
      }
    } else if (c === '?') {
      re += '[^/]';
    } else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end === -1) {
        re += '\\[';
      } else {
        let cls = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        if (cls.startsWith('!')) cls = `^${cls.slice(1)}`;
        re += `[${cls}]`;
        i = end;
      }
    } else if (c === '{') {
      braceDepth++;
      re += '(?:';
    } else if (c === '}' && braceDepth > 0) {
      braceDepth--;
      re += ')';
    } else if (c === ',' && braceDepth > 0) {
      re += '|';
    } else if (c === '\\' && i + 1 < glob.length) {
      i++;
      re += (glob[i] as string).replace(REGEX_SPECIAL, '\\$&');
    } else {
      re += c.replace(REGEX_SPECIAL, '\\$&');
    }
  }
  while (braceDepth-- > 0) re += ')';
  return re;
}

export function compileRule(pattern: string): GlobRule | undefined {
  let p = pattern.trim();
  if (p.length === 0 || p.startsWith('#')) return undefined;
  const negated = p.startsWith('!');
  if (negated) p = p.slice(1);
  const dirOnly = p.endsWith('/');
  if (dirOnly) p = p.replace(/\/+$/, '');
  const anchored = p.includes('/');
  if (p.startsWith('/')) p = p.slice(1);
  if (p.length === 0) return undefined;
  let regex: RegExp;
  try {
    regex = new RegExp(`^${globToRegExpSource(p)}$`);
  } catch {
    return undefined;
  }
  return { regex, negated, dirOnly, anchored };
}

/** A compiled list of rules: `matches` says whether the path is excluded. */
export class GlobSet {
  readonly rules: GlobRule[];

  constructor(patterns: readonly string[]) {
    this.rules = patterns.map(compileRule).filter((r): r is GlobRule => r !== undefined);
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /**
   * `rel` is the path relative to the set's base (no leading `/`), `name`
   * its last segment. Returns true (excluded), false (re-included by a
   * negation) or undefined (no rule matched).
   */
  decide(rel: string, name: string, isDir: boolean): boolean | undefined {
    let verdict: boolean | undefined;
    for (const r of this.rules) {
      if (r.dirOnly && !isDir) continue;
      if (r.regex.test(r.anchored ? rel : name)) verdict = !r.negated;
    }
    return verdict;
  }

  matches(rel: string, name: string, isDir: boolean): boolean {
    return this.decide(rel, name, isDir) === true;
  }
}

/**
 * True when `rel` or any of its ancestors is excluded by `set` (a pattern
 * naming a directory excludes everything below it).
 */
export function excludedWithAncestors(set: GlobSet, rel: string, isDir: boolean): boolean {
  if (set.empty || rel === '') return false;
  const segs = rel.split('/');
  for (let i = 1; i <= segs.length; i++) {
    if (set.matches(segs.slice(0, i).join('/'), segs[i - 1] as string, i < segs.length || isDir)) return true;
  }
  return false;
}
