/**
 * A workspace's resources and disk (§11, §18): cpus, memory and disk size
 * changed through the one update path (bounds, namespace admission, disks
 * only grow), applied at once where the driver can and otherwise at the
 * next start, which the answer says; and the disk read from the disk
 * itself: usage, the files of the writable layer, a flush.
 */
import { StateConflict, ValidationFailed } from '../core/errors.ts';
import type { Principal } from '../auth/principal.ts';
import type { DiskUsage, OverlayListing } from '../host/drivers/driver.ts';
import type { WorkspaceDeps } from './workspaces/deps.ts';
import { find } from './workspaces/queries.ts';
import { current, sandboxRef, type Workspace } from './workspaces/row.ts';
import { update, type ResizeOutcome } from './workspaces/update.ts';
import { restart } from './workspaces/power.ts';

const FIELDS = ['cpus', 'memory_mb', 'disk_size_mb'] as const;

export interface ResizeResult {
  workspace: Workspace;
  updated: { cpus: number; memory_mb: number; disk_size_mb: number };
  /** How each change took effect: 'applied'/'grown' now, 'next-start', or 'unchanged'. */
  applied: ResizeOutcome;
  /** The workspace was restarted to apply a change the driver cannot make live (`apply: true`). */
  relaunched: boolean;
}

/**
 * PUT and PATCH /workspace/:id/resources. PUT names the whole set: a field
 * it leaves out keeps its value, as the SDK and CLI send only what changes;
 * PATCH needs at least one field. `apply: true` restarts a running
 * workspace when a change would otherwise wait for its next start.
 */
export async function resize(d: WorkspaceDeps, p: Principal, idOrSlug: string, body: Record<string, unknown>, partial: boolean): Promise<ResizeResult> {
  const config: Record<string, unknown> = {};
  // The CLI and MCP's names for the same fields.
  const aliases: Record<string, (typeof FIELDS)[number]> = { memory: 'memory_mb', disk: 'disk_size_mb', disk_mb: 'disk_size_mb', ram_mb: 'memory_mb', vcpus: 'cpus' };
  for (const [k, v] of Object.entries(body)) {
    if (v === undefined || v === null) continue;
    const key = (FIELDS as readonly string[]).includes(k) ? k : aliases[k];
    if (key) config[key] = v;
    else if (k !== 'apply') throw new ValidationFailed(k, `unknown resource field ${JSON.stringify(k)}: use cpus, memory_mb, disk_size_mb and apply`);
  }
  if (body.apply !== undefined && typeof body.apply !== 'boolean') throw new ValidationFailed('apply', 'apply must be true or false');
  if (Object.keys(config).length === 0) {
    throw new ValidationFailed('body', `${partial ? 'PATCH' : 'PUT'} /resources needs at least one of cpus, memory_mb, disk_size_mb`);
  }
  const outcome: ResizeOutcome = { compute: 'unchanged', disk: 'unchanged' };
  let ws = await update(d, p, idOrSlug, { config }, outcome);
  let relaunched = false;
  const waiting = outcome.compute === 'next-start' || outcome.disk === 'next-start';
  if (body.apply === true && waiting && ws.state === 'running') {
    ws = await restart(d, p, ws.id);
    relaunched = true;
    if (outcome.compute === 'next-start') outcome.compute = 'applied';
    if (outcome.disk === 'next-start') outcome.disk = 'grown';
  }
  return { workspace: ws, updated: { cpus: ws.config.cpus, memory_mb: ws.config.memory_mb, disk_size_mb: ws.config.disk_size_mb }, applied: outcome, relaunched };
}

/** Usage read from the workspace's disk. */
export async function diskUsage(d: WorkspaceDeps, p: Principal, idOrSlug: string): Promise<{ workspace: Workspace; usage: DiskUsage }> {
  const ws = await withSlot(d, p, idOrSlug);
  const usage = d.host.diskUsage ? await d.locks.run(ws.id, () => d.host.diskUsage!(sandboxRef(ws))) : null;
  if (!usage) throw new StateConflict(`the ${ws.driver} driver cannot read disk usage from the host`, 'read it inside with rt.exec("df -h /")');
  return { workspace: ws, usage };
}

/** The files the workspace changed over its image (the writable layer). */
export async function overlay(d: WorkspaceDeps, p: Principal, idOrSlug: string, limit: number): Promise<{ workspace: Workspace; listing: OverlayListing }> {
  const ws = await withSlot(d, p, idOrSlug);
  // Under the workspace's lock: listing a stopped workspace mounts its disk, which a start must not race.
  const listing = d.host.overlayFiles
    ? await d.locks.run(ws.id, async () => { const cur = await current(d, ws.id); return d.host.overlayFiles!(sandboxRef(cur), limit, cur.state === 'running' || cur.state === 'paused'); })
    : null;
  if (!listing) throw new StateConflict(`a ${ws.driver} workspace's writable layer is a disk image the host does not read`, 'list files inside with rt.files.list({ path: "/" })');
  return { workspace: ws, listing };
}

/** Flush the disk's buffered writes to its image: the guest's page cache first (through the agent), then the host's. */
export async function syncDisk(d: WorkspaceDeps, p: Principal, idOrSlug: string, guestSync: (ws: Workspace) => Promise<boolean>): Promise<{ workspace: Workspace; guest: boolean; host: boolean }> {
  const ws = await withSlot(d, p, idOrSlug);
  const running = ws.state === 'running';
  const guest = running ? await guestSync(ws) : false;
  const host = d.host.syncDisk ? await d.locks.run(ws.id, () => d.host.syncDisk!(sandboxRef(ws))) : false;
  return { workspace: ws, guest, host };
}

async function withSlot(d: WorkspaceDeps, p: Principal, idOrSlug: string): Promise<Workspace> {
  const ws = await find(d, p, idOrSlug);
  if (ws.slotIndex === null) throw new StateConflict(`workspace ${ws.id} has no disk yet (${ws.state})`, 'wait until it is provisioned');
  return ws;
}
