/** File classification shared by stat, list (code_files_only) and search (file_types). */
import { extname } from 'node:path';

/** Lower-case extension without the dot, or undefined. */
export function extensionOf(name: string): string | undefined {
  const ext = extname(name);
  return ext.length > 1 ? ext.slice(1).toLowerCase() : undefined;
}

const CODE_EXTENSIONS = new Set([
  'js', 'mjs', 'cjs', 'jsx', 'ts', 'mts', 'cts', 'tsx', 'json', 'jsonc', 'py', 'pyi', 'rb', 'go', 'rs', 'java', 'kt',
  'kts', 'scala', 'c', 'h', 'cc', 'cpp', 'cxx', 'hpp', 'hh', 'cs', 'fs', 'swift', 'm', 'mm', 'php', 'pl', 'pm',
  'lua', 'r', 'jl', 'dart', 'ex', 'exs', 'erl', 'hrl', 'clj', 'cljs', 'hs', 'ml', 'mli', 'elm', 'vue', 'svelte',
  'astro', 'html', 'htm', 'css', 'scss', 'sass', 'less', 'sql', 'sh', 'bash', 'zsh', 'fish', 'ps1', 'yaml', 'yml',
  'toml', 'ini', 'cfg', 'conf', 'xml', 'md', 'mdx', 'rst', 'tex', 'graphql', 'gql', 'proto', 'tf', 'hcl', 'nix',
  'zig', 'nim', 'v', 'sol', 'prisma', 'dockerfile', 'makefile', 'cmake', 'gradle', 'groovy', 'vim', 'el',
]);

const CODE_NAMES = new Set(['Dockerfile', 'Makefile', 'Rakefile', 'Gemfile', 'Procfile', 'Justfile', 'CMakeLists.txt']);

export function isCodeFile(name: string): boolean {
  if (CODE_NAMES.has(name)) return true;
  const ext = extensionOf(name);
  return ext !== undefined && CODE_EXTENSIONS.has(ext);
}

/**
 * Search `file_types` names (ripgrep's vocabulary, the common ones) → extensions.
 * An unknown type is taken as an extension itself (`file_types=vue`).
 */
export const FILE_TYPES: Record<string, readonly string[]> = {
  js: ['js', 'mjs', 'cjs', 'jsx'],
  ts: ['ts', 'mts', 'cts', 'tsx'],
  typescript: ['ts', 'mts', 'cts', 'tsx'],
  javascript: ['js', 'mjs', 'cjs', 'jsx'],
  py: ['py', 'pyi'],
  python: ['py', 'pyi'],
  rust: ['rs'],
  go: ['go'],
  java: ['java'],
  c: ['c', 'h'],
  cpp: ['cc', 'cpp', 'cxx', 'hpp', 'hh', 'h'],
  ruby: ['rb'],
  php: ['php'],
  html: ['html', 'htm'],
  css: ['css', 'scss', 'sass', 'less'],
  json: ['json', 'jsonc'],
  yaml: ['yaml', 'yml'],
  md: ['md', 'mdx', 'markdown'],
  markdown: ['md', 'mdx', 'markdown'],
  sh: ['sh', 'bash', 'zsh'],
  shell: ['sh', 'bash', 'zsh'],
  toml: ['toml'],
  sql: ['sql'],
  swift: ['swift'],
  kotlin: ['kt', 'kts'],
};

/** Octal permission string, `0644`. */
export function modeString(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** Parse an octal mode given as `"0644"`, `"644"`, `"0o644"` or the number 644 (digits read as octal). */
export function parseMode(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const s = String(v).trim().replace(/^0o/i, '');
  if (!/^[0-7]{1,4}$/.test(s)) return NaN;
  return parseInt(s, 8);
}
