/** Network reach of a caller's ingress/egress lists, and applying a changed policy to a live sandbox. */
import { checkNetworkReach } from '../../core/grants.ts';
import type { WorkspaceConfig } from '../../core/workspace-spec.ts';
import type { Principal } from '../../auth/principal.ts';
import type { WorkspaceDeps } from './deps.ts';
import { sandboxRef, type Workspace } from './row.ts';

/** Tokens may wire ingress/egress only to workspaces and hosts they were granted. */
export async function checkReach(d: WorkspaceDeps, p: Principal, ingress: string[] | undefined, egress: string[] | undefined): Promise<void> {
  if (p.grants.reach === null && p.grants.egressHosts === null && p.namespace === null) return;
  if (!ingress?.length && !egress?.length) return;
  const rows = await d.db.selectFrom('workspaces').select(['id', 'slot_index']).where('slot_index', 'is not', null).execute();
  const ipOf = (slotIndex: number) => d.host.agentEndpoint({ slotIndex }).ip;
  const internal = new Set(rows.map((r) => ipOf(r.slot_index!)));
  // Without an explicit reach list, a namespace-bound caller reaches its own namespace only.
  const inScope = p.namespace === null ? null
    : new Set((await d.db.selectFrom('workspaces').select('id').where('namespace', '=', p.namespace).execute()).map((r) => r.id));
  const reachable = new Set(rows.filter((r) => (p.grants.reach ?? (inScope ? [...inScope] : [])).includes(r.id)).map((r) => ipOf(r.slot_index!)));
  checkNetworkReach(p.grants, { ingress, egress }, { isInternal: (e) => internal.has(e), ipsOfReachable: reachable, unrestricted: p.grants.reach === null && p.namespace === null });
}

const NETWORK_KEYS = ['allow_internet', 'ingress', 'egress', 'outbound_ip'];

/** A live sandbox gets a changed network policy at once; a stopped one gets it at its next start. */
export async function applyIfChanged(d: WorkspaceDeps, before: WorkspaceConfig, after: WorkspaceConfig, updated: Workspace): Promise<void> {
  const changed = NETWORK_KEYS.some((k) => JSON.stringify(after[k]) !== JSON.stringify(before[k]));
  if (changed && (updated.state === 'running' || updated.state === 'paused')) await d.host.applyNetwork(sandboxRef(updated));
}
