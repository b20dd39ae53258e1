/**
 * Lazy access to the PTY native addon (@lydell/node-pty). It is the one
 * dependency esbuild cannot inline: bundleAgent() marks it external and
 * copies the package (and its per-platform prebuilt `pty.node`) into a
 * `node_modules/` beside agent.mjs, where Node's resolver finds it. Loading
 * it lazily keeps agent startup fast and lets every other feature work when
 * the addon is missing: terminals then fail with a clear 501.
 */
import type * as NodePty from '@lydell/node-pty';
import { AgentError } from '../../core/agent-protocol/errors.ts';

export type PtyModule = typeof NodePty;
export type IPty = NodePty.IPty;

let loading: Promise<PtyModule> | undefined;

export function loadPty(): Promise<PtyModule> {
  loading ??= import('@lydell/node-pty').then(
    (m) => ((m as { default?: PtyModule }).default ?? m) as PtyModule,
  );
  return loading.catch((err: unknown) => {
    loading = undefined; // a later install may fix it; try again next time
    throw new AgentError('not_implemented', `PTY support is unavailable in this agent: ${(err as Error).message}`);
  });
}
