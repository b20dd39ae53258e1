/**
 * How host networking fails: every error names the operation, and a hint
 * says what the operator can do when the cause is recognisable.
 */
import { HostCommandError } from '../exec.ts';

export type NetworkOp = 'plan' | 'ensure' | 'attach' | 'detach' | 'policy' | 'sync' | 'dns' | 'teardown' | 'list';

export class NetworkError extends Error {
  constructor(readonly op: NetworkOp, message: string, readonly hint?: string, options?: { cause?: unknown }) {
    super(`network ${op}: ${message}`, options);
    this.name = 'NetworkError';
  }
}

/** The operator's next step for a failed attach, from what `ip` or `nft` said. */
export function hintFor(e: unknown): string | undefined {
  const text = e instanceof HostCommandError ? e.stderr : String(e);
  if (/Cannot find device "?\S+"?|master/.test(text)) return 'the bridge is missing: run HostNetwork.ensure() first (hearthd does at boot)';
  if (/No such file or directory/.test(text) && /nft|element/.test(text)) return 'the nft table is missing: run HostNetwork.ensure() first';
  if (/Operation not permitted/.test(text)) return 'network plumbing needs root (CAP_NET_ADMIN)';
  return undefined;
}

/** A NetworkError for `op` (one already made keeps its own op and hint). */
export function wrap(op: NetworkOp, e: unknown, hint?: string): NetworkError {
  if (e instanceof NetworkError) return e;
  return new NetworkError(op, e instanceof Error ? e.message : String(e), hint, { cause: e });
}
