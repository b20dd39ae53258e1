/**
 * What the host knows about a workspace that the routes show: its agent's
 * internal endpoint, its live counters, its outbound address, and the
 * host's capacity and image catalog. Routes ask the workspace service for
 * these, so no route holds the HostDriver.
 */
import type { AgentEndpoint } from '../../core/agent-protocol.ts';
import type { SandboxStats } from '../../host/drivers/driver.ts';
import type { ImageCatalogEntry } from '../../host/images/types.ts';
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

/** Refuses an address that is not this host's (before it is stored as config.outbound_ip). */
export function checkOutboundIp(d: WorkspaceDeps, ip: string): Promise<void> {
  return d.host.checkOutboundIp(ip);
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
