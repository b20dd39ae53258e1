/**
 * Restart decisions of the supervisor, pure (unit-tested exhaustively).
 *
 * - `never`: an exit is final.
 * - `on-failure`: restart after a non-zero exit code or a death by signal;
 *   an exit with code 0 is final.
 * - `always`: restart after any exit.
 * A stop asked for by a caller is always final. `max_restarts` (> 0) caps
 * the restarts since the last explicit start; 0 means no cap.
 *
 * Back-off: the n-th quick failure in a row waits `restart_delay · 2^(n−1)`
 * seconds (`restart_backoff: false` keeps it at `restart_delay`), never less
 * than MIN_DELAY_MS and never more than MAX_BACKOFF_MS. A run that lasted
 * STABLE_RUN_MS or more counts as healthy and resets the back-off (Docker
 * uses the same 10 s rule).
 */
import type { RestartPolicy } from '../../core/agent-protocol/workload-spec.ts';

export const MIN_DELAY_MS = 100;
export const MAX_BACKOFF_MS = 60_000;
export const STABLE_RUN_MS = 10_000;

export interface ExitFacts {
  /** Exit code, or null when killed by a signal or it never started. */
  code: number | null;
  signal: string | null;
  /** The caller asked for this stop (stop, restart, delete, shutdown). */
  requested: boolean;
  /** How long the process ran, in ms (0 when it never started). */
  ranMs: number;
}

export interface RestartState {
  /** Restarts since the last explicit start. */
  restarts: number;
  /** Quick failures in a row (drives the back-off). */
  streak: number;
}

export type FinalStatus = 'exited' | 'failed' | 'stopped';

export type Decision =
  | { restart: true; delayMs: number; next: RestartState }
  | { restart: false; status: FinalStatus; reason: string };

export function failed(exit: Pick<ExitFacts, 'code' | 'signal'>): boolean {
  return exit.signal !== null || exit.code === null || exit.code !== 0;
}

/** Status of a process that will not be restarted. */
export function finalStatus(exit: ExitFacts): FinalStatus {
  if (exit.requested) return 'stopped';
  return failed(exit) ? 'failed' : 'exited';
}

export function backoffMs(spec: { restart_delay: number; restart_backoff: boolean }, streak: number): number {
  const base = Math.max(MIN_DELAY_MS, Math.round(spec.restart_delay * 1000));
  if (!spec.restart_backoff) return Math.min(base, MAX_BACKOFF_MS);
  const n = Math.max(1, streak);
  // 2^(n−1) overflows nothing: the cap applies long before n reaches 64.
  return Math.min(MAX_BACKOFF_MS, base * 2 ** Math.min(n - 1, 30));
}

export function decide(
  spec: { restart_policy: RestartPolicy; max_restarts: number; restart_delay: number; restart_backoff: boolean },
  exit: ExitFacts,
  state: RestartState,
): Decision {
  if (exit.requested) return { restart: false, status: 'stopped', reason: 'stopped on request' };
  const isFailure = failed(exit);
  if (spec.restart_policy === 'never') return { restart: false, status: finalStatus(exit), reason: 'restart_policy is never' };
  if (spec.restart_policy === 'on-failure' && !isFailure) return { restart: false, status: 'exited', reason: 'exited with code 0 (restart_policy on-failure)' };
  if (spec.max_restarts > 0 && state.restarts >= spec.max_restarts) {
    return { restart: false, status: finalStatus(exit), reason: `restart limit reached (${spec.max_restarts})` };
  }
  const streak = exit.ranMs >= STABLE_RUN_MS ? 1 : state.streak + 1;
  return { restart: true, delayMs: backoffMs(spec, streak), next: { restarts: state.restarts + 1, streak } };
}

/** Whether a workload that was meant to run comes back when the agent boots. */
export function startsAtBoot(spec: { enabled: boolean; restart_policy: RestartPolicy }, desired: 'running' | 'stopped'): boolean {
  return desired === 'running' && spec.enabled && spec.restart_policy !== 'never';
}
