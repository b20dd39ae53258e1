/**
 * How an image's config becomes a process, with Docker's rules, for exec
 * and workloads (the agent and the workload supervisor apply the result):
 *
 * - argv = entrypoint + cmd; a caller's `cmd` replaces the image's Cmd but
 *   keeps its Entrypoint; a caller's `entrypoint` replaces both (as
 *   `docker run --entrypoint` resets CMD);
 * - env = the image's Env, then the caller's variables by name on top;
 * - cwd = the caller's, else the image's WorkingDir, else `/`;
 * - user = the caller's, else the image's User, else root.
 *
 * Pure.
 */
import type { ResolvedImage } from './types.ts';

export interface ProcessOverride {
  entrypoint?: string[];
  cmd?: string[];
  /** `KEY=value` entries. */
  env?: string[];
  workingDir?: string;
  user?: string;
}

export interface ImageProcess {
  argv: string[];
  env: string[];
  cwd: string;
  user: string;
}

/** Merge `KEY=value` lists: later entries replace earlier ones with the same key, order of first appearance kept. */
export function mergeEnv(base: string[], over: string[]): string[] {
  const out = new Map<string, string>();
  for (const e of [...base, ...over]) {
    const eq = e.indexOf('=');
    if (eq <= 0) continue;
    out.set(e.slice(0, eq), e);
  }
  return [...out.values()];
}

/** The process an image runs by default, with a caller's overrides; null when there is no command at all. */
export function imageProcess(
  image: Pick<ResolvedImage, 'env' | 'workingDir' | 'user' | 'entrypoint' | 'cmd'>,
  o: ProcessOverride = {},
): ImageProcess | null {
  const entrypoint = o.entrypoint ?? image.entrypoint ?? [];
  const cmd = o.cmd ?? (o.entrypoint ? [] : image.cmd ?? []);
  const argv = [...entrypoint, ...cmd];
  if (argv.length === 0) return null;
  return {
    argv,
    env: mergeEnv(image.env, o.env ?? []),
    cwd: o.workingDir || image.workingDir || '/',
    user: o.user || image.user || 'root',
  };
}
