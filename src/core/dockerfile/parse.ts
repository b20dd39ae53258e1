/**
 * Dockerfile text → instructions, as Docker's own parser reads it: parser
 * directives (`# escape=`), comments, line continuations with the escape
 * character, exec (JSON) and shell forms, and `--flag=value` options. Every
 * instruction keeps the line it starts on, so every later error names it.
 *
 * Pure: no I/O, no variable substitution (plan.ts does that, per instruction,
 * with the ARG/ENV values in effect at that line).
 */
import { ValidationFailed } from '../errors.ts';

/** A Dockerfile that cannot be built, with the line (1-based) the problem is on. */
export class DockerfileError extends ValidationFailed {
  constructor(readonly line: number, message: string, hint?: string) {
    super('dockerfile', `Dockerfile line ${line}: ${message}`, hint);
    this.name = 'DockerfileError';
  }
}

export const INSTRUCTIONS = [
  'FROM', 'RUN', 'COPY', 'ADD', 'ENV', 'ARG', 'WORKDIR', 'USER', 'EXPOSE', 'LABEL', 'ENTRYPOINT', 'CMD',
] as const;
export type InstructionName = (typeof INSTRUCTIONS)[number];

/** Instructions Docker has that Hearth refuses by name, with what to do instead. */
const UNSUPPORTED: Record<string, string> = {
  ONBUILD: 'ONBUILD triggers are not supported; put the steps in the image that uses them',
  HEALTHCHECK: 'HEALTHCHECK is not supported; declare a workload health check when creating the workspace',
  STOPSIGNAL: 'STOPSIGNAL is not supported',
  SHELL: 'SHELL is not supported; RUN uses /bin/sh -c (use the exec form for another shell)',
  VOLUME: 'VOLUME is not supported; the workspace disk already persists every path',
  MAINTAINER: 'MAINTAINER is deprecated; use LABEL maintainer=…',
};

export interface Instruction {
  name: InstructionName;
  /** 1-based line the instruction starts on. */
  line: number;
  /** `--name=value` options given before the arguments. */
  flags: Record<string, string>;
  /** The arguments as written (continuations joined, escapes kept), flags removed. */
  raw: string;
  /** The exec (JSON array) form, when the arguments are one. */
  json: string[] | null;
  /** The instruction's source text, for messages and cache keys. */
  source: string;
}

const FLAGS: Partial<Record<InstructionName, string[]>> = {
  FROM: ['platform'],
  RUN: ['network'],
  COPY: ['from', 'chown', 'chmod'],
  ADD: ['chown', 'chmod'],
};

/** Parse the directives at the top (`# escape=\``); only those before any other line count. */
function directives(lines: string[]): { escape: string } {
  let escape = '\\';
  for (const l of lines) {
    const m = /^#\s*([a-zA-Z]+)\s*=\s*(.*?)\s*$/.exec(l);
    if (!m) break;
    if (m[1]!.toLowerCase() === 'escape') {
      if (m[2] !== '\\' && m[2] !== '`') throw new DockerfileError(1, `escape directive must be \\ or \`, not ${JSON.stringify(m[2])}`);
      escape = m[2];
    }
  }
  return { escape };
}

/** Split off leading `--flag=value` options. */
function takeFlags(name: InstructionName, rest: string, line: number): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {};
  let s = rest;
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S*))?(?:\s+|$)/.exec(s);
    if (!m) break;
    const allowed = FLAGS[name] ?? [];
    if (!allowed.includes(m[1]!)) {
      throw new DockerfileError(line, `${name} does not take --${m[1]}${allowed.length ? ` (it takes ${allowed.map((f) => `--${f}`).join(', ')})` : ''}`);
    }
    if (m[2] === undefined || m[2] === '') throw new DockerfileError(line, `${name} --${m[1]} needs a value (--${m[1]}=…)`);
    flags[m[1]!] = m[2];
    s = s.slice(m[0].length);
  }
  return { flags, rest: s };
}

/** The exec form: a JSON array of strings, else null (then it is the shell form, as Docker does). */
function jsonForm(rest: string): string[] | null {
  const t = rest.trim();
  if (!t.startsWith('[')) return null;
  try {
    const v: unknown = JSON.parse(t);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : null;
  } catch {
    return null;
  }
}

/** Parse a whole Dockerfile. Throws DockerfileError naming the line. */
export function parseDockerfile(text: string): Instruction[] {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const { escape } = directives(lines);
  const out: Instruction[] = [];
  let i = 0;
  while (i < lines.length) {
    const start = i;
    const first = lines[i]!;
    i++;
    if (/^\s*(#.*)?$/.test(first)) continue;
    // Join continuation lines; comment lines and blank lines inside a continuation are skipped, as Docker does.
    let joined = first;
    while (new RegExp(`${escape === '\\' ? '\\\\' : '`'}\\s*$`).test(joined)) {
      joined = joined.replace(new RegExp(`${escape === '\\' ? '\\\\' : '`'}\\s*$`), '');
      while (i < lines.length && /^\s*#/.test(lines[i]!)) i++;
      if (i >= lines.length) break;
      joined += lines[i]!;
      i++;
    }
    const line = start + 1;
    const m = /^\s*([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(joined);
    if (!m) throw new DockerfileError(line, `cannot read ${JSON.stringify(joined.trim().slice(0, 60))}: expected an instruction`);
    const word = m[1]!.toUpperCase();
    if (UNSUPPORTED[word]) throw new DockerfileError(line, UNSUPPORTED[word]!);
    if (!(INSTRUCTIONS as readonly string[]).includes(word)) {
      throw new DockerfileError(line, `unknown instruction ${m[1]}`, `instructions: ${INSTRUCTIONS.join(', ')}`);
    }
    const name = word as InstructionName;
    const args = (m[2] ?? '').trim();
    if (/^<<-?["']?[A-Za-z_]/.test(args) || (name === 'RUN' && /^(--\S+\s+)*<<-?["']?[A-Za-z_]/.test(args))) {
      throw new DockerfileError(line, 'heredocs are not supported; use a RUN with && or COPY a script');
    }
    const { flags, rest } = takeFlags(name, args, line);
    if (rest.trim() === '') throw new DockerfileError(line, `${name} needs arguments`);
    out.push({ name, line, flags, raw: rest.trim(), json: jsonForm(rest), source: joined.trim() });
  }
  if (!out.some((x) => x.name === 'FROM')) throw new DockerfileError(1, 'no FROM instruction: a Dockerfile starts from an image (or FROM scratch)');
  const firstOther = out.find((x) => x.name !== 'ARG');
  if (firstOther && firstOther.name !== 'FROM') throw new DockerfileError(firstOther.line, `${firstOther.name} before the first FROM (only ARG may come before it)`);
  return out;
}

/**
 * Split shell-form words as Docker does for COPY, ADD, EXPOSE, USER…: on
 * whitespace, with single and double quotes and the escape character.
 */
export function splitWords(s: string, line: number): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new DockerfileError(line, `unterminated ${quote} quote`);
  if (inWord) out.push(cur);
  return out;
}

/**
 * `KEY=value KEY2="two words"` (ENV, LABEL, ARG) or the legacy `ENV KEY value`.
 * Values are returned as written, substitution is the planner's.
 */
export function parsePairs(name: InstructionName, raw: string, line: number): Array<[string, string | undefined]> {
  const words = splitWords(raw, line);
  if (words.length === 0) throw new DockerfileError(line, `${name} needs KEY=value`);
  if (!words[0]!.includes('=') && name !== 'ARG') {
    // Legacy form: the first word is the key, the rest of the line is the value.
    if (words.length < 2) throw new DockerfileError(line, `${name} ${words[0]} has no value (use ${words[0]}=value)`);
    const key = raw.trim().split(/\s+/, 1)[0]!;
    return [[key, raw.trim().slice(key.length).trim()]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) {
      if (name === 'ARG') return [w, undefined];
      throw new DockerfileError(line, `${name} ${JSON.stringify(w)} is not KEY=value`);
    }
    const key = w.slice(0, eq);
    if (!key) throw new DockerfileError(line, `${name} ${JSON.stringify(w)} has an empty key`);
    return [key, w.slice(eq + 1)];
  });
}
