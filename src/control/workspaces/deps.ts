/**
 * What every workspace module shares: the store, the host, the options, the
 * collaborators given at construction, and the in-memory state of one
 * hearthd (locks, resting slots, in-flight provisioning, activity). The
 * modules are functions over this one object, so none owns a private copy.
 */
import type { Logger } from 'pino';
import type { Db } from '../../store/db.ts';
import type { HostDriver } from '../../host/host-driver.ts';
import type { Principal } from '../../auth/principal.ts';
import { DEFAULT_BOUNDS, type ResourceBounds, type WorkspaceConfig } from '../../core/workspace-spec.ts';
import { KeyedMutex } from '../../core/keyed-mutex.ts';
import { sharedLocks, type SharedLocks } from '../../store/shared-locks.ts';
import { ALL_GRANTS } from '../../core/grants.ts';
import type { Workspace } from './row.ts';
import type { WarmPool } from '../warm-pool/pool.ts';

export interface WorkspaceServiceOptions {
  /** How long POST /workspace waits for readiness before answering "still provisioning". */
  fastPathMs: number;
  bounds: ResourceBounds;
  /** How long a freed network slot rests before reuse, so in-flight packets drain. */
  slotRestMs: number;
  /** Hard cap on workspaces on this host (beyond the slot capacity). */
  maxWorkspaces: number;
  /** At most this many pooled sandboxes (`--warm-pool N`); 0 = no warm pools. */
  warmPool?: number;
}

export const DEFAULT_SERVICE_OPTIONS: WorkspaceServiceOptions = {
  fastPathMs: 10_000, bounds: DEFAULT_BOUNDS, slotRestMs: 5_000, maxWorkspaces: 1000,
};

/** Accrues metered usage for a workspace up to now (called before every state change). */
export interface UsageMeter {
  accrue(ws: Workspace): Promise<void>;
}

/** Namespace admission (limits, suspension, quotas), consulted before create, start and resize. */
export interface Admission {
  admitCreate(p: Principal, namespace: string | null, config: WorkspaceConfig): Promise<string | null>;
  admitStart(namespace: string | null): Promise<void>;
  admitResize(namespace: string | null, workspaceId: string, config: WorkspaceConfig): Promise<void>;
}

/** The collaborators a WorkspaceService is built with; absent = no admission, no metering. */
export interface WorkspaceLinks {
  admission?: Admission | null;
  meter?: UsageMeter | null;
}

export interface WorkspaceDeps {
  readonly db: Db;
  readonly host: HostDriver;
  readonly log: Logger;
  readonly opts: WorkspaceServiceOptions;
  readonly admission: Admission | null;
  readonly meter: UsageMeter | null;
  /** Operations on one workspace are serialized; '__slots__' serializes every create. */
  readonly locks: KeyedMutex;
  /** The same keys across every hearthd on one PostgreSQL store (a pass-through on SQLite); taken through `exclusive`. */
  readonly shared: SharedLocks;
  /** Freed slot → when it may be reused. */
  readonly restingSlots: Map<number, number>;
  /** In-flight provisioning per workspace, so callers can await readiness. */
  readonly inflight: Map<string, Promise<void>>;
  /** Last activity per workspace (edge traffic, ping). In memory: a restart restarts idle timers, never shortens them. */
  readonly activity: Map<string, number>;
  readonly startedAt: number;
  /** Pre-started sandboxes creates may claim (control/warm-pool); null when pools are off. */
  pool: WarmPool | null;
}

export function workspaceDeps(db: Db, host: HostDriver, log: Logger, opts: WorkspaceServiceOptions, links: WorkspaceLinks): WorkspaceDeps {
  return {
    db, host, log, opts, admission: links.admission ?? null, meter: links.meter ?? null,
    locks: new KeyedMutex(), shared: sharedLocks(db), restingSlots: new Map(), inflight: new Map(), activity: new Map(), startedAt: Date.now(), pool: null,
  };
}

/**
 * Run `fn` holding `key` in this process and, on a shared store, in every
 * hearthd on it: the in-process lock first, so one process waits on one
 * connection per key at most.
 */
export function exclusive<T>(d: WorkspaceDeps, key: string, fn: () => Promise<T>): Promise<T> {
  return d.locks.run(key, () => d.shared.run(key, fn));
}

/** The principal of hearthd's own background work (reaper, reconcile). */
export const adminPrincipal: Principal = { kind: 'key', clientId: 'hearthd', admin: true, namespace: null, workspaceId: null, grants: ALL_GRANTS };
