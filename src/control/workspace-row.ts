/**
 * The stored workspace, decoded. One place converts between the store's
 * columns and typed values.
 */
import type { WorkspaceTable } from '../store/db.ts';
import type { WorkspaceConfig, WorkspaceMode } from '../core/workspace-spec.ts';
import type { WorkspaceState } from '../core/lifecycle.ts';
import type { DriverName } from '../host/drivers/driver.ts';
import type { SandboxRef } from '../host/host-driver.ts';

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
