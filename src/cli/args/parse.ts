/** A tiny flag parser: `--name value`, `--name=value`, boolean `--flag`. Unknown flags are errors with a hint. */
import { ArgError } from './listen.ts';

export interface FlagSpec {
  [name: string]: 'string' | 'boolean';
}

export function parseFlags(argv: string[], spec: FlagSpec, usage: string): Record<string, string | boolean | undefined> {
  const out: Record<string, string | boolean | undefined> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new ArgError(`unexpected argument ${JSON.stringify(arg)}`, usage);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const kind = spec[name];
    if (!kind) throw new ArgError(`unknown flag --${name}`, usage);
    if (kind === 'boolean') { out[name] = inline === undefined ? true : inline !== 'false'; continue; }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ArgError(`--${name} needs a value`, usage);
    out[name] = value;
  }
  return out;
}
