/**
 * `.dockerignore` as Docker reads it: one pattern a line, `#` comments,
 * `!` re-includes, `*` and `?` within one path segment, `**` across segments,
 * patterns rooted at the context (a leading `/` or `./` is dropped), the last
 * matching line wins. A directory that matches excludes what is under it
 * unless a later `!` pattern re-includes something inside. Pure.
 */

export interface IgnoreRule {
  negate: boolean;
  re: RegExp;
  pattern: string;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      // `**/` matches zero or more directories; a trailing `**` anything.
      if (glob[i + 2] === '/') {
        re += '(?:.*/)?';
        i += 2;
      } else {
        re += '.*';
        i += 1;
      }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < glob.length) re += `\\${glob[++i]}`;
    else re += /[.+^${}()|[\]\\]/.test(c) ? `\\${c}` : c;
  }
  // A pattern matching a directory matches everything below it.
  return new RegExp(`^${re}(?:/.*)?$`);
}

/** A path as Docker reads it in a build context: relative to the root, `.` dropped, `..` clamped at the root. */
export function cleanContextPath(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  return parts.join('/');
}

export function parseDockerignore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of text.replace(/\r\n?/g, '\n').split('\n')) {
    let line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    if (negate) line = line.slice(1).trim();
    const pattern = cleanContextPath(line);
    if (!pattern) continue;
    rules.push({ negate, re: globToRegExp(pattern), pattern });
  }
  return rules;
}

/** Whether the context-relative path `rel` is excluded. */
export function isIgnored(rules: IgnoreRule[], rel: string): boolean {
  const p = cleanContextPath(rel);
  let ignored = false;
  for (const r of rules) if (r.re.test(p)) ignored = !r.negate;
  return ignored;
}

/** Whether a directory must still be walked: some `!` rule may re-include something below it. */
export function mayReinclude(rules: IgnoreRule[], dir: string): boolean {
  const p = cleanContextPath(dir);
  return rules.some((r) => r.negate && (r.pattern.startsWith(`${p}/`) || r.pattern.includes('*')));
}
