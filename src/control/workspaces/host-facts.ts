/**
 * What the host knows about a workspace that the routes show: its agent's
 * internal endpoint, its live counters, its outbound address, and the
 * host's capacity and image catalog. Routes ask the workspace service for
 * these, so no route holds the HostDriver.
 */
import type { AgentEndpoint } from '../../core/agent-protocol.ts';
import type { SandboxStats } from '../../host/drivers/driver.ts';
import type { ImageCatalogEntry } from '../../host/images/types.ts';
import { ValidationFailed } from '../../core/errors.ts';
import { defaultConfig } from '../../core/workspace-spec.ts';
import type { WorkspaceDeps } from './deps.ts';
import { sandboxRef, type Workspace } from './row.ts';

/** The agent's internal IP and port; null while the workspace holds no network slot. */
export function endpoint(d: WorkspaceDeps, ws: Pick<Workspace, 'slotIndex'>): AgentEndpoint | null {
  return ws.slotIndex === null ? null : d.host.agentEndpoint({ slotIndex: ws.slotIndex });
}

/** The sandbox's cgroup counters as the host reads them. */
export function stats(d: WorkspaceDeps, ws: Workspace): Promise<SandboxStats | null> {
  return d.host.stats(sandboxRef(ws));
}

/** Bytes the workspace has sent out; null without a slot or a counter. */
export async function egressBytes(d: WorkspaceDeps, ws: Pick<Workspace, 'slotIndex'>): Promise<number | null> {
  return ws.slotIndex === null ? null : d.host.egressBytes({ slotIndex: ws.slotIndex });
}

/** The outbound (SNAT) address in effect; null = the host's outgoing interface address. */
export function outboundIp(d: WorkspaceDeps, ws: Pick<Workspace, 'config'>): string | null {
  return d.host.outboundIp(ws);
}

/**
 * The check every path that sets `config.outbound_ip` runs (create, update,
 * `network/ip`): the address must be this host's, and a dedicated address
 * (any but the host's default, which every workspace shares) is held by one
 * tenant at a time — a namespace cannot send as another's address. The
 * tenant is the namespace, or the API key for workspaces outside any.
 */
export async function checkOutboundAllotment(d: WorkspaceDeps, ip: unknown, holder: { owner: string; namespace: string | null; exceptId?: string }): Promise<void> {
  if (ip === null || ip === undefined || ip === '') return;
  if (typeof ip !== 'string') throw new ValidationFailed('outbound_ip', 'outbound_ip must be an IPv4 address of this host, or null');
  await d.host.checkOutboundIp(ip);
  if (ip === d.host.outboundIp({ config: { ...defaultConfig(), outbound_ip: null } })) return;
  const rows = await d.db.selectFrom('workspaces').select(['id', 'owner', 'namespace', 'config']).where('state', 'not in', ['deleted', 'deleting']).execute();
  const taken = rows.find((r) => r.id !== holder.exceptId && (JSON.parse(r.config) as { outbound_ip?: unknown }).outbound_ip === ip
    && (holder.namespace !== null ? r.namespace !== holder.namespace : r.namespace !== null || r.owner !== holder.owner));
  if (taken) throw new ValidationFailed('outbound_ip', `outbound_ip ${ip} is dedicated to another tenant's workspaces: choose another address of this host`);
}

/** How many network slots, so workspaces, this host has. */
export function capacity(d: WorkspaceDeps): number {
  return d.host.slotCapacity;
}

/** The image catalog (§19): what a create may name. */
export function catalog(d: WorkspaceDeps): Promise<ImageCatalogEntry[]> {
  return d.host.catalog();
}

export type { ImageCatalogEntry, SandboxStats };
