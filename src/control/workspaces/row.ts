/**
 * The stored workspace, decoded. One place converts between the store's
 * columns and typed values, and one place persists a state change.
 */
import type { WorkspaceTable } from '../../store/db.ts';
import type { WorkspaceConfig, WorkspaceMode } from '../../core/workspace-spec.ts';
import { assertTransition, type WorkspaceState } from '../../core/lifecycle.ts';
import type { DriverName } from '../../host/drivers/driver.ts';
import type { SandboxRef } from '../../host/host-driver.ts';
import type { WorkspaceDeps } from './deps.ts';

export interface Provisioning {
  state: 'queued' | 'running' | 'ready' | 'failed';
  phase: 'queued' | 'preparing' | 'starting' | 'initializing' | 'ready' | 'failed' | 'deleting';
  message: string;
  error: { code: string; message: string; stage?: string; hint?: string } | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
}

export interface Workspace {
  id: string;
  slug: string | null;
  name: string;
  owner: string;
  namespace: string | null;
  image: string;
  mode: WorkspaceMode;
  state: WorkspaceState;
  driver: DriverName;
  slotIndex: number | null;
  generation: number;
  agentSecret: string;
  runtimeEnabled: boolean;
  runtimeTokenGen: number;
  config: WorkspaceConfig;
  provisioning: Provisioning | null;
  ttlExpiresAt: string | null;
  idempotencyKey: string | null;
  userRequestedStop: boolean;
  stateChangedAt: string;
  createdAt: string;
  updatedAt: string;
}

export function decodeWorkspace(r: WorkspaceTable): Workspace {
  return {
    id: r.id, slug: r.slug, name: r.name, owner: r.owner, namespace: r.namespace, image: r.image,
    mode: r.mode as WorkspaceMode, state: r.state as WorkspaceState, driver: r.driver as DriverName,
    slotIndex: r.slot_index, generation: r.generation, agentSecret: r.agent_secret,
    runtimeEnabled: r.runtime_enabled === 1, runtimeTokenGen: r.runtime_token_gen,
    config: JSON.parse(r.config) as WorkspaceConfig,
    provisioning: r.provisioning ? (JSON.parse(r.provisioning) as Provisioning) : null,
    ttlExpiresAt: r.ttl_expires_at, idempotencyKey: r.idempotency_key,
    userRequestedStop: r.user_requested_stop === 1, stateChangedAt: r.state_changed_at,
    createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

export function sandboxRef(ws: Workspace): SandboxRef {
  if (ws.slotIndex === null) throw new Error(`workspace ${ws.id} has no network slot`);
  return {
    id: ws.id, driver: ws.driver, slotIndex: ws.slotIndex, generation: ws.generation,
    agentSecret: ws.agentSecret, image: ws.image, hostname: (ws.slug ?? ws.id.replace('_', '-')).slice(0, 63), config: ws.config,
  };
}

export const now = (): string => new Date().toISOString();

/** Internal lookup by id (no principal): gateway, reaper. */
export async function byId(d: WorkspaceDeps, id: string): Promise<Workspace | null> {
  const row = await d.db.selectFrom('workspaces').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? decodeWorkspace(row) : null;
}

/** The row of a workspace known to exist (read again under its lock). */
export async function current(d: WorkspaceDeps, id: string): Promise<Workspace> {
  return (await byId(d, id))!;
}

export function freshProvisioning(at: string): Provisioning {
  return { state: 'running', phase: 'preparing', message: '', error: null, created_at: at, updated_at: at, completed_at: null };
}

export async function setProvisioning(d: WorkspaceDeps, ws: Workspace, patch: Partial<Provisioning>): Promise<void> {
  const at = now();
  const provisioning: Provisioning = { ...(ws.provisioning ?? freshProvisioning(at)), ...patch, updated_at: at };
  ws.provisioning = provisioning;
  await d.db.updateTable('workspaces').set({ provisioning: JSON.stringify(provisioning), updated_at: at }).where('id', '=', ws.id).execute();
}

/** Persist a state change (checked against the lifecycle table) before acting on it. */
export async function transition(
  d: WorkspaceDeps, ws: Workspace, to: WorkspaceState,
  extra: { provisioning?: Partial<Provisioning> | null; userRequestedStop?: boolean; generation?: number } = {},
): Promise<Workspace> {
  assertTransition(ws.state, to);
  // Meter the time spent in the old state before leaving it.
  await d.meter?.accrue(ws);
  const at = now();
  const set: Partial<WorkspaceTable> = { state: to, state_changed_at: at, updated_at: at };
  if (extra.provisioning === null) set.provisioning = null;
  else if (extra.provisioning) set.provisioning = JSON.stringify({ ...(ws.provisioning ?? freshProvisioning(at)), ...extra.provisioning, updated_at: at });
  if (extra.userRequestedStop !== undefined) set.user_requested_stop = extra.userRequestedStop ? 1 : 0;
  if (extra.generation !== undefined) set.generation = extra.generation;
  await d.db.updateTable('workspaces').set(set).where('id', '=', ws.id).execute();
  return current(d, ws.id);
}
