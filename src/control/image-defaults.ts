/**
 * An image's default process (OCI Entrypoint + Cmd, a Dockerfile's
 * ENTRYPOINT/CMD, a catalog image such as `postgres-16`) becomes the
 * workspace's default workload: the `cmd` workload, created on the first
 * boot exactly as `config.cmd` is, so it is supervised, logged as the `cmd`
 * log and persisted by the agent. A caller's `config.cmd` replaces it (as
 * `docker run IMAGE CMD` does). The workspace's env comes on top of the
 * image's Env, so POSTGRES_PASSWORD & co reach the entrypoint.
 *
 * An interactive default (a shell or a REPL with no arguments, as the
 * official `python`, `node` and `debian` images have) is not a service: it
 * would exit at once on a closed stdin, and the workspace already is that
 * shell, so it starts nothing. Pure.
 */
import type { ResolvedImage } from '../host/images/types.ts';
import { imageProcess, mergeEnv } from '../host/images/process.ts';

/** Label of the workload that runs the workspace's command (the agent's ROLE_LABEL). */
const ROLE_LABEL = 'hearth.role';

const INTERACTIVE = new Set(['sh', 'bash', 'ash', 'dash', 'zsh', 'python', 'python3', 'node', 'irb', 'ghci', 'iex', 'erl', 'php', 'jshell', 'psql']);

function base(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** The image's command is only an interactive shell or REPL (possibly behind a pass-through entrypoint). */
export function isInteractiveDefault(image: Pick<ResolvedImage, 'entrypoint' | 'cmd'>): boolean {
  const ep = image.entrypoint ?? [];
  const cmd = image.cmd ?? [];
  if (ep.length === 0) return cmd.length === 1 && INTERACTIVE.has(base(cmd[0]!));
  if (ep.length === 1 && base(ep[0]!) === 'docker-entrypoint.sh') return cmd.length === 1 && INTERACTIVE.has(base(cmd[0]!));
  return ep.length === 1 && cmd.length === 0 && INTERACTIVE.has(base(ep[0]!));
}

export function imageDefaultWorkload(
  image: Pick<ResolvedImage, 'env' | 'workingDir' | 'user' | 'entrypoint' | 'cmd'>,
  config: { cmd?: unknown; env?: unknown },
): Record<string, unknown> | null {
  if (config.cmd !== undefined && config.cmd !== null && config.cmd !== '') return null;
  if (isInteractiveDefault(image)) return null;
  const proc = imageProcess(image);
  if (!proc) return null;
  const wsEnv = Array.isArray(config.env) ? (config.env as unknown[]).filter((e): e is string => typeof e === 'string') : [];
  return {
    id: 'cmd', name: 'cmd', cmd: proc.argv, env: mergeEnv(proc.env, wsEnv), working_dir: proc.cwd,
    ...(proc.user && proc.user !== 'root' ? { user: proc.user } : {}),
    labels: { [ROLE_LABEL]: 'cmd', 'hearth.source': 'image' },
  };
}
