/**
 * Docker's variable substitution for the instructions that take it (FROM,
 * COPY, ADD, ENV, ARG defaults, WORKDIR, USER, EXPOSE, LABEL): `$NAME`,
 * `${NAME}`, `${NAME:-default}`, `${NAME:+alternative}`, `\$` for a literal
 * dollar, nothing replaced inside single quotes. Pure.
 */
import { DockerfileError } from './parse.ts';

export function substitute(text: string, vars: ReadonlyMap<string, string>, line: number): string {
  let out = '';
  let single = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'") {
      single = !single;
      out += c;
      continue;
    }
    if (single) {
      out += c;
      continue;
    }
    if (c === '\\' && text[i + 1] === '$') {
      out += '\\$';
      i++;
      continue;
    }
    if (c !== '$') {
      out += c;
      continue;
    }
    if (text[i + 1] === '{') {
      let close = -1;
      for (let j = i + 2, depth = 1; j < text.length; j++) {
        if (text[j] === '{') depth++;
        else if (text[j] === '}' && --depth === 0) {
          close = j;
          break;
        }
      }
      if (close < 0) throw new DockerfileError(line, `unterminated \${ in ${JSON.stringify(text)}`);
      const body = text.slice(i + 2, close);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])(.*))?$/s.exec(body);
      if (!m) throw new DockerfileError(line, `bad substitution \${${body}}`);
      const [, name, op, word] = m as unknown as [string, string, string | undefined, string | undefined];
      const value = vars.get(name);
      const set = op?.startsWith(':') ? value !== undefined && value !== '' : value !== undefined;
      if (op === ':-' || op === '-') out += set ? value : substitute(word ?? '', vars, line);
      else if (op === ':+' || op === '+') out += set ? substitute(word ?? '', vars, line) : '';
      else out += value ?? '';
      i = close;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
    if (!m) {
      out += c;
      continue;
    }
    out += vars.get(m[0]) ?? '';
    i += m[0].length;
  }
  return out;
}

/** Remove the `\$` escapes substitution kept (after words were split). */
export function unescapeDollars(s: string): string {
  return s.replace(/\\\$/g, '$');
}
