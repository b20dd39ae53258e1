/**
 * How a command array becomes a process (pure; unit-tested directly).
 *
 * - `direct`: execve(cmd[0], cmd) — no shell, no globbing.
 * - `shell`: one element is a script; several elements are joined with
 *   spaces, like `sh -c "$*"`, so `['ls', '*.ts', '|', 'wc', '-l']` pipes.
 *   An explicit shell invocation (`['bash', '-c', script]`) runs as given.
 * - `auto` (default): shell when the command needs one — a single element
 *   with whitespace or shell syntax, or an operator token among several
 *   elements — else direct.
 */
import { basename } from 'node:path';

export type ExecMode = 'auto' | 'shell' | 'direct';

export interface Argv {
  file: string;
  args: string[];
  /** The mode actually used after `auto` was decided. */
  mode: 'shell' | 'direct';
}

const SHELL_SYNTAX = /[\s|&;<>()$`\\"'*?[\]#~=%{}!]/;
const OPERATOR = /^(\||\|\||&&|;|&|>|>>|<|<<|2>|2>>|2>&1|&>|\|&)$/;
const SHELL_NAMES = new Set(['sh', 'bash', 'dash', 'zsh', 'ash', 'ksh', 'fish']);

function isShellInvocation(cmd: string[]): boolean {
  return cmd.length >= 2 && SHELL_NAMES.has(basename(cmd[0] as string)) && cmd[1] === '-c';
}

export function needsShell(cmd: string[]): boolean {
  if (cmd.length === 1) return SHELL_SYNTAX.test(cmd[0] as string);
  return cmd.some((a) => OPERATOR.test(a));
}

export function resolveArgv(cmd: string[], mode: ExecMode, shell: string): Argv {
  if (cmd.length === 0) throw new Error('empty command');
  const effective = mode === 'auto' ? (needsShell(cmd) ? 'shell' : 'direct') : mode;
  if (effective === 'direct' || isShellInvocation(cmd)) {
    return { file: cmd[0] as string, args: cmd.slice(1), mode: effective };
  }
  return { file: shell, args: ['-c', cmd.join(' ')], mode: 'shell' };
}
