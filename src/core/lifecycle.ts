/**
 * The workspace lifecycle as a table (Cloud Hypervisor's valid_transition,
 * E2B's AllowedTransitions). `ALLOWED` is typed over every state, so adding a
 * state without deciding its moves does not compile.
 */

export const STATES = ['provisioning', 'running', 'stopped', 'paused', 'sleeping', 'failed', 'deleting', 'deleted'] as const;
export type WorkspaceState = (typeof STATES)[number];

export const ALLOWED: Record<WorkspaceState, readonly WorkspaceState[]> = {
  provisioning: ['running', 'failed', 'deleting'],
  running: ['stopped', 'paused', 'sleeping', 'deleting', 'provisioning'],
  stopped: ['provisioning', 'deleting'],
  paused: ['running', 'stopped', 'deleting'],
  sleeping: ['provisioning', 'running', 'stopped', 'deleting'],
  failed: ['provisioning', 'deleting'],
  deleting: ['deleted'],
  deleted: [],
};

/** Why a workspace stopped or went away: a closed set (E2B's KillReason). */
export type StopReason = 'request' | 'ttl' | 'idle' | 'remove_on_exit' | 'reconcile' | 'crash' | 'namespace' | 'quota';

export class InvalidTransition extends Error {
  constructor(readonly from: WorkspaceState, readonly to: WorkspaceState) {
    super(`cannot move a workspace from ${from} to ${to}`);
    this.name = 'InvalidTransition';
  }
}

export function canTransition(from: WorkspaceState, to: WorkspaceState): boolean {
  return ALLOWED[from].includes(to);
}

export function assertTransition(from: WorkspaceState, to: WorkspaceState): void {
  if (!canTransition(from, to)) throw new InvalidTransition(from, to);
}

/** The contract's `info.status` word for each state (Swift SDK: running, stopped, paused, creating, …). */
export function publicStatus(state: WorkspaceState): string {
  switch (state) {
    case 'provisioning': return 'creating';
    case 'sleeping': return 'sleeping';
    default: return state;
  }
}
