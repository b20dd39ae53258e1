/**
 * The workspace service: every control-plane operation on workspaces, in
 * domain terms. Each state change is persisted before it is acted on, so a
 * restarted hearthd can reconcile; operations on one workspace are
 * serialized; the host is reached only through the HostDriver.
 */
import type { Logger } from 'pino';
import { sql } from 'kysely';
import type { Db, WorkspaceTable } from '../store/db.ts';
import type { HostDriver } from '../host/host-driver.ts';
import { assertTransition, type StopReason, type WorkspaceState } from '../core/lifecycle.ts';
import {
  DEFAULT_BOUNDS, mergeConfig, slugFromName, validateSlug, type CreateRequest, type ResourceBounds, type WorkspaceConfig,
} from '../core/workspace-spec.ts';
import { AlreadyExists, NotFound, ProvisionFailed, StateConflict, ValidationFailed, LimitReached } from '../core/errors.ts';
import { parseDuration } from '../core/duration.ts';
import { applyInitialWorkloads, validateInitialWorkloads } from './workloads.ts';
import { KeyedMutex } from '../core/keyed-mutex.ts';
import { canSeeWorkspace, type Principal } from '../auth/principal.ts';
import { ALL_GRANTS, checkNetworkReach } from '../core/grants.ts';
import type { NamespaceService, WorkspaceOps } from './namespaces.ts';
import { randomId, randomToken } from '../auth/secrets.ts';
import { decodeWorkspace, sandboxRef, type Provisioning, type Workspace } from './workspace-row.ts';

export interface WorkspaceServiceOptions {
  /** How long POST /workspace waits for readiness before answering "still provisioning". */
  fastPathMs: number;
  bounds: ResourceBounds;
  /** How long a freed network slot rests before reuse, so in-flight packets drain. */
  slotRestMs: number;
  /** Hard cap on workspaces on this host (beyond the slot capacity). */
  maxWorkspaces: number;
}

export const DEFAULT_SERVICE_OPTIONS: WorkspaceServiceOptions = {
  fastPathMs: 10_000, bounds: DEFAULT_BOUNDS, slotRestMs: 5_000, maxWorkspaces: 1000,
};

const now = () => new Date().toISOString();

/** Accrues metered usage for a workspace up to now (called before every state change). */
export interface UsageMeter {
  accrue(ws: Workspace): Promise<void>;
}

export class WorkspaceService implements WorkspaceOps {
  /** Namespace admission (limits, suspension, quotas); wired by hearthd. */
  namespaces: Pick<NamespaceService, 'admitCreate' | 'admitStart' | 'admitResize'> | null = null;
  meter: UsageMeter | null = null;

  private readonly locks = new KeyedMutex();
  private readonly restingSlots = new Map<number, number>();
  /** In-flight provisioning per workspace, so callers can await readiness. */
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(
    private readonly db: Db,
    private readonly host: HostDriver,
    private readonly log: Logger,
    private readonly opts: WorkspaceServiceOptions = DEFAULT_SERVICE_OPTIONS,
  ) {}

  // ---------------------------------------------------------------- queries

  async find(p: Principal, idOrSlug: string): Promise<Workspace> {
    const row = await this.db.selectFrom('workspaces').selectAll()
      .where((eb) => eb.or([eb('id', '=', idOrSlug), eb('slug', '=', idOrSlug)]))
      .executeTakeFirst();
    if (!row || row.state === 'deleted') throw new NotFound('workspace', idOrSlug);
    const ws = decodeWorkspace(row);
    if (!canSeeWorkspace(p, ws)) throw new NotFound('workspace', idOrSlug);
    return ws;
  }

  /** Internal lookup by id (no principal): gateway, reaper. */
  async byId(id: string): Promise<Workspace | null> {
    const row = await this.db.selectFrom('workspaces').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? decodeWorkspace(row) : null;
  }

  async list(p: Principal, q: { page: number; limit: number; status?: string; mode?: string; namespace?: string }):
    Promise<{ workspaces: Workspace[]; total: number }> {
    let query = this.db.selectFrom('workspaces').where('state', '!=', 'deleted');
    if (p.workspaceId) query = query.where('id', '=', p.workspaceId);
    if (p.namespace) query = query.where('namespace', '=', p.namespace);
    else if (q.namespace) query = query.where('namespace', '=', q.namespace);
    if (q.mode) query = query.where('mode', '=', q.mode);
    if (q.status) {
      const states = q.status === 'creating' ? ['provisioning'] : [q.status];
      query = query.where('state', 'in', states);
    }
    const total = Number((await query.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    const rows = await query.selectAll().orderBy('created_at', 'desc').orderBy('id')
      .limit(q.limit).offset((q.page - 1) * q.limit).execute();
    return { workspaces: rows.map(decodeWorkspace), total };
  }

  async counts(p: Principal): Promise<{ count: number; cpus: number; memory_mb: number; disk_size_mb: number; running: number; running_cpus: number; running_memory_mb: number }> {
    const { workspaces } = await this.list(p, { page: 1, limit: 100_000 });
    const sum = (ws: Workspace[], f: (c: WorkspaceConfig) => number) => ws.reduce((a, w) => a + f(w.config), 0);
    const running = workspaces.filter((w) => w.state === 'running' || w.state === 'provisioning' || w.state === 'paused');
    return {
      count: workspaces.length,
      cpus: sum(workspaces, (c) => c.cpus), memory_mb: sum(workspaces, (c) => c.memory_mb), disk_size_mb: sum(workspaces, (c) => c.disk_size_mb),
      running: running.length, running_cpus: sum(running, (c) => c.cpus), running_memory_mb: sum(running, (c) => c.memory_mb),
    };
  }

  // ---------------------------------------------------------------- create

  async create(p: Principal, req: CreateRequest): Promise<Workspace> {
    if (req.idempotencyKey) {
      const existing = await this.db.selectFrom('workspaces').selectAll()
        .where('owner', '=', p.clientId).where('idempotency_key', '=', req.idempotencyKey).executeTakeFirst();
      if (existing && existing.state !== 'deleted') return this.awaitFastPath(decodeWorkspace(existing));
    }
    // A namespace-bound caller may name only its own namespace (admission refuses others).
    const namespace = req.namespace ?? p.namespace;
    if (p.workspaceId) throw new ValidationFailed('scope', 'a workspace-scoped token cannot create workspaces');
    validateInitialWorkloads(req.config);
    // Resolving the image first means a bad name creates nothing at all.
    await this.host.resolveImage(req.image);
    const slug = req.slug ?? (req.name ? slugFromName(req.name) : null);
    if (req.slug) validateSlug(req.slug);
    const driver = req.driver ?? this.host.defaultDriver;

    await this.checkReach(p, req.config.ingress, req.config.egress);

    // One lock for every create: counting and inserting cannot interleave, so no
    // two creates can both pass a namespace limit of one (single hearthd per store).
    const ws = await this.locks.run('__slots__', async () => {
      const nsSlug = this.namespaces ? await this.namespaces.admitCreate(p, namespace, req.config) : namespace;
      const live = await this.db.selectFrom('workspaces').select('slot_index').where('slot_index', 'is not', null).execute();
      if (live.length >= this.opts.maxWorkspaces) {
        throw new LimitReached('sandbox', `this host runs at most ${this.opts.maxWorkspaces} workspaces`, live.length, this.opts.maxWorkspaces);
      }
      const slotIndex = this.pickSlot(new Set(live.map((r) => r.slot_index!)));
      const id = randomId('ws_');
      const at = now();
      let finalSlug = slug;
      if (finalSlug) {
        const taken = await this.db.selectFrom('workspaces').select('id').where('slug', '=', finalSlug).executeTakeFirst();
        if (taken) {
          if (req.slug) throw new AlreadyExists('workspace slug', finalSlug);
          finalSlug = null; // auto-derived slug collides: fall back to none rather than fail
        }
      }
      const provisioning: Provisioning = {
        state: 'running', phase: 'preparing', message: 'preparing the workspace', error: null,
        created_at: at, updated_at: at, completed_at: null,
      };
      const row: WorkspaceTable = {
        id, slug: finalSlug, name: req.name ?? finalSlug ?? id, owner: p.clientId, namespace: nsSlug,
        image: req.image, mode: req.mode, state: 'provisioning', driver, slot_index: slotIndex, generation: 1,
        agent_secret: randomToken(32), runtime_enabled: 0, runtime_token_gen: 0,
        config: JSON.stringify(req.config), provisioning: JSON.stringify(provisioning),
        ttl_expires_at: req.config.ttl_seconds ? new Date(Date.now() + req.config.ttl_seconds * 1000).toISOString() : null,
        idempotency_key: req.idempotencyKey, user_requested_stop: 0, metered_at: null, metadata: null,
        state_changed_at: at, created_at: at, updated_at: at,
      };
      await this.db.insertInto('workspaces').values(row).execute();
      return decodeWorkspace(row);
    });
    this.log.info({ workspace: ws.id, image: ws.image, driver, slot: ws.slotIndex }, 'workspace created');
    this.startProvisioning(ws);
    return this.awaitFastPath(ws);
  }

  private pickSlot(used: Set<number>): number {
    const t = Date.now();
    for (const [slot, until] of this.restingSlots) if (until <= t) this.restingSlots.delete(slot);
    for (let i = 0; i < this.host.slotCapacity; i++) {
      if (!used.has(i) && !this.restingSlots.has(i)) return i;
    }
    throw new LimitReached('sandbox', 'no free network slot on this host', used.size, this.host.slotCapacity);
  }

  /** Wait (bounded) for provisioning so the create answer can already say ready:true. */
  private async awaitFastPath(ws: Workspace): Promise<Workspace> {
    const pending = this.inflight.get(ws.id);
    if (pending) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([pending.catch(() => undefined), new Promise((r) => { timer = setTimeout(r, this.opts.fastPathMs); })]);
      clearTimeout(timer);
    }
    return (await this.byId(ws.id)) ?? ws;
  }

  /** Wait for an in-flight provisioning (tests, CLI). */
  async settled(id: string): Promise<void> {
    await this.inflight.get(id)?.catch(() => undefined);
  }

  private startProvisioning(ws: Workspace): void {
    const run = this.locks.run(ws.id, () => this.provision(ws.id));
    const tracked = run.finally(() => { if (this.inflight.get(ws.id) === tracked) this.inflight.delete(ws.id); });
    this.inflight.set(ws.id, tracked);
    tracked.catch(() => undefined);
  }

  /** provisioning → running | failed. Runs under the workspace lock. */
  private async provision(id: string): Promise<void> {
    const ws = await this.byId(id);
    if (!ws || ws.state !== 'provisioning') return;
    const started = Date.now();
    await this.setProvisioning(ws, { state: 'running', phase: 'starting', message: 'starting the sandbox' });
    try {
      await this.host.start(sandboxRef(ws));
    } catch (err) {
      const failure = err instanceof ProvisionFailed ? err.failure : { stage: 'host' as const, message: err instanceof Error ? err.message : String(err) };
      this.log.error({ workspace: id, failure }, 'workspace failed to start');
      await this.host.stop(sandboxRef(ws)).catch((e) => this.log.warn({ workspace: id, err: e }, 'cleanup after failed start'));
      await this.transition(ws, 'failed', {
        provisioning: {
          state: 'failed', phase: 'failed', message: failure.message,
          error: { code: 'CREATE_FAILED', message: failure.message, stage: failure.stage, ...(failure.hint ? { hint: failure.hint } : {}) },
        },
      });
      return;
    }
    const latest = await this.byId(id);
    if (!latest || latest.state !== 'provisioning') return; // deleted meanwhile: the delete path cleans up
    const firstBoot = latest.generation === 1;
    await this.transition(latest, 'running', {
      provisioning: { state: 'ready', phase: 'ready', message: 'workspace is ready', error: null, completed_at: now() },
    });
    // config.workloads / config.cmd are created once, on the first boot: the agent persists them after that.
    if (firstBoot && (Array.isArray(latest.config.workloads) || latest.config.cmd)) await applyInitialWorkloads(this.host, latest, this.log);
    this.log.info({ workspace: id, ms: Date.now() - started }, 'workspace running');
  }

  private async setProvisioning(ws: Workspace, patch: Partial<Provisioning>): Promise<void> {
    const at = now();
    const provisioning: Provisioning = { ...(ws.provisioning ?? this.freshProvisioning(at)), ...patch, updated_at: at };
    ws.provisioning = provisioning;
    await this.db.updateTable('workspaces').set({ provisioning: JSON.stringify(provisioning), updated_at: at }).where('id', '=', ws.id).execute();
  }

  private freshProvisioning(at: string): Provisioning {
    return { state: 'running', phase: 'preparing', message: '', error: null, created_at: at, updated_at: at, completed_at: null };
  }

  /** Persist a state change (checked against the lifecycle table) before acting on it. */
  private async transition(ws: Workspace, to: WorkspaceState, extra: { provisioning?: Partial<Provisioning> | null; userRequestedStop?: boolean; generation?: number } = {}): Promise<Workspace> {
    assertTransition(ws.state, to);
    // Meter the time spent in the old state before leaving it.
    await this.meter?.accrue(ws);
    const at = now();
    const set: Partial<WorkspaceTable> = { state: to, state_changed_at: at, updated_at: at };
    if (extra.provisioning === null) set.provisioning = null;
    else if (extra.provisioning) set.provisioning = JSON.stringify({ ...(ws.provisioning ?? this.freshProvisioning(at)), ...extra.provisioning, updated_at: at });
    if (extra.userRequestedStop !== undefined) set.user_requested_stop = extra.userRequestedStop ? 1 : 0;
    if (extra.generation !== undefined) set.generation = extra.generation;
    await this.db.updateTable('workspaces').set(set).where('id', '=', ws.id).execute();
    return (await this.byId(ws.id))!;
  }

  // ---------------------------------------------------------------- power

  async start(p: Principal, idOrSlug: string): Promise<Workspace> {
    const found = await this.find(p, idOrSlug);
    await this.locks.run(found.id, async () => {
      const ws = (await this.byId(found.id))!;
      if (ws.state === 'running' || ws.state === 'provisioning') return;
      await this.namespaces?.admitStart(ws.namespace);
      if (ws.state === 'paused') {
        await this.host.resume(sandboxRef(ws));
        await this.transition(ws, 'running');
        return;
      }
      await this.transition(ws, 'provisioning', {
        generation: ws.generation + 1, userRequestedStop: false,
        provisioning: { ...this.freshProvisioning(now()), message: 'starting' },
      });
    });
    const ws = (await this.byId(found.id))!;
    if (ws.state === 'provisioning' && !this.inflight.has(ws.id)) this.startProvisioning(ws);
    return this.awaitFastPath(ws);
  }

  async stop(p: Principal | null, idOrSlug: string, reason: StopReason = 'request'): Promise<Workspace | null> {
    const found = p ? await this.find(p, idOrSlug) : await this.byId(idOrSlug);
    if (!found) throw new NotFound('workspace', idOrSlug);
    if (found.config.remove_on_exit && reason !== 'reconcile') {
      await this.delete(p, found.id, 'remove_on_exit');
      return null;
    }
    return this.locks.run(found.id, async () => {
      const ws = (await this.byId(found.id))!;
      if (ws.state === 'stopped') return ws;
      if (ws.state === 'deleting' || ws.state === 'deleted') throw new NotFound('workspace', idOrSlug);
      if (ws.state === 'failed' || ws.state === 'provisioning') {
        await this.host.stop(sandboxRef(ws));
        if (ws.state === 'provisioning') return this.transition(ws, 'failed', { provisioning: { state: 'failed', phase: 'failed', message: 'stopped during provisioning', error: { code: 'CREATE_FAILED', message: 'stopped during provisioning' } } });
        return ws;
      }
      await this.host.stop(sandboxRef(ws));
      this.log.info({ workspace: ws.id, reason }, 'workspace stopped');
      return this.transition(ws, 'stopped', { userRequestedStop: reason === 'request', provisioning: null });
    });
  }

  async restart(p: Principal, idOrSlug: string): Promise<Workspace> {
    const ws = await this.find(p, idOrSlug);
    await this.locks.run(ws.id, async () => {
      const cur = (await this.byId(ws.id))!;
      if (cur.state === 'running' || cur.state === 'paused') {
        await this.host.stop(sandboxRef(cur));
        await this.transition(cur, 'stopped', { userRequestedStop: false, provisioning: null });
      }
    });
    return this.start(p, ws.id);
  }

  async pause(p: Principal, idOrSlug: string): Promise<Workspace> {
    const found = await this.find(p, idOrSlug);
    return this.locks.run(found.id, async () => {
      const ws = (await this.byId(found.id))!;
      if (ws.state === 'paused') return ws;
      if (ws.state !== 'running') throw new StateConflict(`workspace is ${ws.state}; only a running workspace can be paused`, 'start it first');
      await this.host.pause(sandboxRef(ws));
      return this.transition(ws, 'paused');
    });
  }

  async resume(p: Principal, idOrSlug: string): Promise<Workspace> {
    const found = await this.find(p, idOrSlug);
    return this.locks.run(found.id, async () => {
      const ws = (await this.byId(found.id))!;
      if (ws.state === 'running') return ws;
      if (ws.state !== 'paused') throw new StateConflict(`workspace is ${ws.state}; only a paused workspace can be resumed`, 'use start for a stopped workspace');
      await this.namespaces?.admitStart(ws.namespace);
      await this.host.resume(sandboxRef(ws));
      return this.transition(ws, 'running');
    });
  }

  // ---------------------------------------------------------------- delete

  async delete(p: Principal | null, idOrSlug: string, reason: StopReason = 'request'): Promise<void> {
    const found = p ? await this.find(p, idOrSlug) : await this.byId(idOrSlug);
    if (!found) throw new NotFound('workspace', idOrSlug);
    await this.locks.run(found.id, async () => {
      const ws = await this.byId(found.id);
      if (!ws || ws.state === 'deleted') return;
      if (ws.state !== 'deleting') await this.transition(ws, 'deleting', ws.provisioning ? { provisioning: { phase: 'deleting' } } : {});
      await this.host.destroy(sandboxRef(ws));
      await this.meter?.accrue((await this.byId(ws.id)) ?? ws);
      await this.db.deleteFrom('workspaces').where('id', '=', ws.id).execute();
      if (ws.slotIndex !== null) this.restingSlots.set(ws.slotIndex, Date.now() + this.opts.slotRestMs);
      this.log.info({ workspace: ws.id, reason }, 'workspace deleted');
    });
  }

  // ---------------------------------------------------------------- update

  async update(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> {
    const found = await this.find(p, idOrSlug);
    return this.locks.run(found.id, async () => {
      const ws = (await this.byId(found.id))!;
      const set: Partial<WorkspaceTable> = { updated_at: now() };
      if (body.name !== undefined) {
        if (typeof body.name !== 'string' || body.name.length === 0 || body.name.length > 255) throw new ValidationFailed('name', 'name must be a string of 1–255 characters');
        set.name = body.name;
      }
      if (body.slug !== undefined) {
        if (body.slug === null) set.slug = null;
        else if (typeof body.slug !== 'string') throw new ValidationFailed('slug', 'slug must be a string or null');
        else {
          const slug = validateSlug(body.slug);
          const taken = await this.db.selectFrom('workspaces').select('id').where('slug', '=', slug).where('id', '!=', ws.id).executeTakeFirst();
          if (taken) throw new AlreadyExists('workspace slug', slug);
          set.slug = slug;
        }
      }
      let config = ws.config;
      if (body.config !== undefined) {
        if (typeof body.config !== 'object' || body.config === null || Array.isArray(body.config)) throw new ValidationFailed('config', 'config must be an object');
        config = mergeConfig(ws.config, body.config as Record<string, unknown>, this.opts.bounds);
        const cfgIn = body.config as Record<string, unknown>;
        await this.checkReach(p, cfgIn.ingress !== undefined ? config.ingress : undefined, cfgIn.egress !== undefined ? config.egress : undefined);
        if (config.cpus !== ws.config.cpus || config.memory_mb !== ws.config.memory_mb || config.disk_size_mb !== ws.config.disk_size_mb) {
          await this.namespaces?.admitResize(ws.namespace, ws.id, config);
        }
        if (ws.mode === 'permanent' && config.ttl_seconds !== null) throw new ValidationFailed('ttl', 'a permanent workspace has no ttl: convert it with lifecycle.makeTemporary');
        set.config = JSON.stringify(config);
        if (config.ttl_seconds !== ws.config.ttl_seconds) {
          set.ttl_expires_at = config.ttl_seconds ? new Date(Date.now() + config.ttl_seconds * 1000).toISOString() : null;
        }
      }
      await this.db.updateTable('workspaces').set(set).where('id', '=', ws.id).execute();
      const updated = (await this.byId(ws.id))!;
      const networkChanged = ['allow_internet', 'ingress', 'egress', 'outbound_ip'].some((k) => JSON.stringify(config[k]) !== JSON.stringify(ws.config[k]));
      if (networkChanged && (updated.state === 'running' || updated.state === 'paused')) await this.host.applyNetwork(sandboxRef(updated));
      return updated;
    });
  }

  // ---------------------------------------------------------------- runtime access

  async setRuntimeEnabled(ws: Workspace, enabled: boolean): Promise<Workspace> {
    const set: Partial<WorkspaceTable> = { runtime_enabled: enabled ? 1 : 0, updated_at: now() };
    // Disabling revokes every outstanding token at once.
    if (!enabled) set.runtime_token_gen = sql<number>`runtime_token_gen + 1` as unknown as number;
    await this.db.updateTable('workspaces').set(set).where('id', '=', ws.id).execute();
    return (await this.byId(ws.id))!;
  }

  async rotateRuntimeToken(ws: Workspace): Promise<Workspace> {
    await this.db.updateTable('workspaces')
      .set({ runtime_token_gen: sql<number>`runtime_token_gen + 1` as unknown as number, runtime_enabled: 1, updated_at: now() })
      .where('id', '=', ws.id).execute();
    return (await this.byId(ws.id))!;
  }

  // ---------------------------------------------------------------- network reach

  /** Tokens may wire ingress/egress only to workspaces and hosts they were granted. */
  private async checkReach(p: Principal, ingress: string[] | undefined, egress: string[] | undefined): Promise<void> {
    if (p.grants.reach === null && p.grants.egressHosts === null && p.namespace === null) return;
    if (!ingress?.length && !egress?.length) return;
    const rows = await this.db.selectFrom('workspaces').select(['id', 'slot_index']).where('slot_index', 'is not', null).execute();
    const ipOf = (slotIndex: number) => this.host.agentEndpoint({ slotIndex }).ip;
    const internal = new Set(rows.map((r) => ipOf(r.slot_index!)));
    // Without an explicit reach list, a namespace-bound caller reaches its own namespace only.
    const inScope = p.namespace === null ? null
      : new Set((await this.db.selectFrom('workspaces').select('id').where('namespace', '=', p.namespace).execute()).map((r) => r.id));
    const reachable = new Set(rows.filter((r) => (p.grants.reach ?? (inScope ? [...inScope] : [])).includes(r.id)).map((r) => ipOf(r.slot_index!)));
    checkNetworkReach(p.grants, { ingress, egress }, { isInternal: (e) => internal.has(e), ipsOfReachable: reachable, unrestricted: p.grants.reach === null && p.namespace === null });
  }

  // ---------------------------------------------------------------- for the namespace service

  async idsInNamespace(slug: string, states?: string[]): Promise<string[]> {
    let q = this.db.selectFrom('workspaces').select('id').where('namespace', '=', slug).where('state', 'not in', ['deleting', 'deleted']);
    if (states) q = q.where('state', 'in', states);
    return (await q.execute()).map((r) => r.id);
  }

  async stopSystem(id: string, reason: 'namespace' | 'quota'): Promise<void> {
    // Stopped, never deleted, whatever remove_on_exit says: the namespace's data stays.
    await this.locks.run(id, async () => {
      const ws = await this.byId(id);
      if (!ws || ws.state === 'stopped' || ws.state === 'failed' || ws.state === 'deleting') return;
      await this.host.stop(sandboxRef(ws));
      if (ws.state === 'provisioning') {
        await this.transition(ws, 'failed', { provisioning: { state: 'failed', phase: 'failed', message: `stopped (${reason})`, error: { code: 'CREATE_FAILED', message: `stopped by the namespace's ${reason === 'quota' ? 'quota policy' : 'suspension'}` } } });
      } else {
        await this.transition(ws, 'stopped', { provisioning: null, userRequestedStop: false });
      }
      this.log.info({ workspace: id, reason }, 'workspace stopped');
    });
  }

  async deleteSystem(id: string): Promise<void> {
    await this.delete(null, id, 'namespace');
  }

  async usageNow(slug: string, excludeId?: string): Promise<{ workspaces: number; totalVcpus: number; totalRamMb: number }> {
    const rows = await this.db.selectFrom('workspaces').select(['id', 'config']).where('namespace', '=', slug).where('state', 'not in', ['deleting', 'deleted']).execute();
    const counted = rows.filter((r) => r.id !== excludeId).map((r) => JSON.parse(r.config) as WorkspaceConfig);
    return { workspaces: counted.length, totalVcpus: counted.reduce((a, c) => a + c.cpus, 0), totalRamMb: counted.reduce((a, c) => a + c.memory_mb, 0) };
  }

  // ---------------------------------------------------------------- lifecycle (§6)

  /** Last activity per workspace (edge traffic, ping). In memory: a restart restarts idle timers, never shortens them. */
  private readonly activity = new Map<string, number>();

  /** Record activity (edge HTTP traffic, ping): it postpones idle sleep. */
  touch(id: string): void {
    this.activity.set(id, Date.now());
  }

  /** The edge's name for touch(): HTTP traffic through the edge is activity (§6). */
  noteActivity(id: string): void {
    this.touch(id);
  }

  lastActivity(ws: Workspace): number {
    return this.activity.get(ws.id) ?? Math.max(Date.parse(ws.stateChangedAt), this.startedAt);
  }
  private readonly startedAt = Date.now();

  private async setLifecycle(ws: Workspace, patch: { mode?: 'permanent' | 'temporary'; config?: Record<string, unknown>; ttlExpiresAt?: string | null }): Promise<Workspace> {
    const set: Partial<WorkspaceTable> = { updated_at: now() };
    if (patch.mode) set.mode = patch.mode;
    if (patch.config) set.config = JSON.stringify(mergeConfig(ws.config, patch.config, this.opts.bounds));
    if (patch.ttlExpiresAt !== undefined) set.ttl_expires_at = patch.ttlExpiresAt;
    await this.db.updateTable('workspaces').set(set).where('id', '=', ws.id).execute();
    return (await this.byId(ws.id))!;
  }

  private expiry(seconds: number | null): string | null {
    return seconds ? new Date(Date.now() + seconds * 1000).toISOString() : null;
  }

  async makePermanent(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> {
    const found = await this.find(p, idOrSlug);
    return this.locks.run(found.id, async () => {
      const ws = (await this.byId(found.id))!;
      const config: Record<string, unknown> = { ttl: null, remove_on_exit: false };
      if (body.restart_policy !== undefined) config.restart_policy = body.restart_policy;
      return this.setLifecycle(ws, { mode: 'permanent', config, ttlExpiresAt: null });
    });
  }

  async makeTemporary(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> {
    const found = await this.find(p, idOrSlug);
    return this.locks.run(found.id, async () => {
      const ws = (await this.byId(found.id))!;
      const config: Record<string, unknown> = {};
      for (const k of ['ttl', 'ttl_action', 'remove_on_exit']) if (body[k] !== undefined) config[k] = body[k];
      const merged = mergeConfig(ws.config, config, this.opts.bounds);
      return this.setLifecycle(ws, { mode: 'temporary', config, ttlExpiresAt: this.expiry(merged.ttl_seconds) });
    });
  }

  /** Set, extend or clear (ttl: null) the TTL; the clock restarts now. */
  async updateTtl(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> {
    const found = await this.find(p, idOrSlug);
    return this.locks.run(found.id, async () => {
      const ws = (await this.byId(found.id))!;
      if (ws.mode === 'permanent' && body.ttl !== undefined && body.ttl !== null) {
        throw new StateConflict('a permanent workspace has no TTL', 'convert it first with lifecycle.makeTemporary');
      }
      const config: Record<string, unknown> = {};
      for (const k of ['ttl', 'ttl_action']) if (body[k] !== undefined) config[k] = body[k];
      const merged = mergeConfig(ws.config, config, this.opts.bounds);
      return this.setLifecycle(ws, { config, ttlExpiresAt: this.expiry(merged.ttl_seconds) });
    });
  }

  /** `{ suspend_after, stop_after }`; suspend_after 0 (or null policy) disables idle sleep. */
  async setIdle(p: Principal, idOrSlug: string, body: Record<string, unknown>, minSuspendSeconds: number): Promise<Workspace> {
    const found = await this.find(p, idOrSlug);
    const parse = (k: string, min: number) => {
      const v = body[k];
      if (v === undefined || v === null || v === 0 || v === '0') return 0;
      const n = parseDuration(v);
      if (n < min) throw new ValidationFailed(`idle.${k}`, `${k} must be 0 (off) or at least ${min} seconds`);
      return n;
    };
    const suspendAfter = parse('suspend_after', minSuspendSeconds);
    const stopAfter = suspendAfter ? parse('stop_after', 3600) : 0;
    return this.locks.run(found.id, async () => {
      const ws = (await this.byId(found.id))!;
      const idle = suspendAfter ? { suspend_after: suspendAfter, stop_after: stopAfter } : null;
      await this.db.updateTable('workspaces').set({ config: JSON.stringify({ ...ws.config, idle }), updated_at: now() }).where('id', '=', ws.id).execute();
      this.touch(ws.id);
      return (await this.byId(ws.id))!;
    });
  }

  /** Keep-alive: renews the TTL clock (by ttl_seconds, or the workspace's own TTL) and the idle timer. */
  async ping(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> {
    const found = await this.find(p, idOrSlug);
    this.touch(found.id);
    const seconds = body.ttl_seconds !== undefined ? parseDuration(body.ttl_seconds) : found.config.ttl_seconds;
    if (found.mode === 'temporary' && seconds) {
      await this.db.updateTable('workspaces').set({ ttl_expires_at: this.expiry(seconds), updated_at: now() }).where('id', '=', found.id).execute();
    }
    return (await this.byId(found.id))!;
  }

  /**
   * Idle sleep: a running workspace with an idle policy and no activity for
   * `suspend_after` seconds goes to sleep — its sandbox stops (memory is not
   * kept for containers: CRIU cannot run here), its files stay, and the next
   * request through the gateway or the edge wakes it. After `stop_after`
   * more seconds a sleeping workspace becomes plainly stopped (no wake).
   */
  async sleepIdle(): Promise<number> {
    const rows = await this.db.selectFrom('workspaces').selectAll().where('state', 'in', ['running', 'sleeping']).execute();
    let n = 0;
    for (const ws of rows.map(decodeWorkspace)) {
      const idle = ws.config.idle as { suspend_after: number; stop_after: number } | null | undefined;
      if (!idle?.suspend_after) continue;
      const quietFor = (Date.now() - this.lastActivity(ws)) / 1000;
      if (ws.state === 'running' && quietFor >= idle.suspend_after) {
        await this.locks.run(ws.id, async () => {
          const cur = (await this.byId(ws.id))!;
          if (cur.state !== 'running') return;
          await this.host.stop(sandboxRef(cur));
          await this.transition(cur, 'sleeping', { provisioning: null });
          this.log.info({ workspace: ws.id, quiet_s: Math.round(quietFor) }, 'workspace went to sleep (idle)');
        });
        n++;
      } else if (ws.state === 'sleeping' && idle.stop_after && (Date.now() - Date.parse(ws.stateChangedAt)) / 1000 >= idle.stop_after) {
        await this.locks.run(ws.id, async () => {
          const cur = (await this.byId(ws.id))!;
          if (cur.state === 'sleeping') await this.transition(cur, 'stopped', { provisioning: null });
        });
        n++;
      }
    }
    return n;
  }

  /**
   * Wake a sleeping workspace and wait until it serves (gateway and edge call
   * this on a request). Returns the workspace as it is afterwards.
   */
  async wake(id: string): Promise<Workspace | null> {
    const ws = await this.byId(id);
    if (!ws || ws.state !== 'sleeping') return ws;
    await this.locks.run(id, async () => {
      const cur = (await this.byId(id))!;
      if (cur.state !== 'sleeping') return;
      await this.namespaces?.admitStart(cur.namespace);
      await this.transition(cur, 'provisioning', { generation: cur.generation + 1, provisioning: { ...this.freshProvisioning(now()), message: 'waking' } });
    });
    this.touch(id);
    const woken = (await this.byId(id))!;
    if (woken.state === 'provisioning' && !this.inflight.has(id)) this.startProvisioning(woken);
    await this.inflight.get(id)?.catch(() => undefined);
    this.log.info({ workspace: id }, 'workspace woke up');
    return this.byId(id);
  }

  // ---------------------------------------------------------------- metadata (§16)

  async metadata(ws: Workspace): Promise<Record<string, string>> {
    const row = await this.db.selectFrom('workspaces').select('metadata').where('id', '=', ws.id).executeTakeFirst();
    return row?.metadata ? (JSON.parse(row.metadata) as Record<string, string>) : {};
  }

  async setMetadata(p: Principal, idOrSlug: string, input: unknown, merge: boolean): Promise<Record<string, string>> {
    const found = await this.find(p, idOrSlug);
    if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ValidationFailed('metadata', 'metadata must be an object of string values');
    return this.locks.run(found.id, async () => {
      const next: Record<string, string> = merge ? await this.metadata(found) : {};
      for (const [k, v] of Object.entries(input as Record<string, unknown>)) {
        if (k.length === 0 || k.length > 128) throw new ValidationFailed('metadata', `metadata key ${JSON.stringify(k.slice(0, 40))} must be 1–128 characters`);
        if (v === null) { delete next[k]; continue; }
        if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw new ValidationFailed(`metadata.${k}`, `metadata.${k} must be a string`);
        const s = String(v);
        if (s.length > 4096) throw new ValidationFailed(`metadata.${k}`, `metadata.${k} is longer than 4096 characters`);
        next[k] = s;
      }
      if (Object.keys(next).length > 64) throw new ValidationFailed('metadata', 'at most 64 metadata keys per workspace');
      await this.db.updateTable('workspaces').set({ metadata: JSON.stringify(next), updated_at: now() }).where('id', '=', found.id).execute();
      return next;
    });
  }

  // ---------------------------------------------------------------- TTL

  /** Apply TTL actions to temporary workspaces whose time is up. Returns how many were handled. */
  async reapExpired(): Promise<number> {
    const due = await this.db.selectFrom('workspaces').select(['id', 'generation'])
      .where('ttl_expires_at', '<=', now())
      .where('state', 'in', ['running', 'paused', 'stopped', 'failed', 'sleeping'])
      .execute();
    let handled = 0;
    for (const { id, generation } of due) {
      try {
        const ws = await this.byId(id);
        // A late reaper must not act on a workspace recreated meanwhile.
        if (!ws || ws.generation !== generation || !ws.ttlExpiresAt || ws.ttlExpiresAt > now()) continue;
        const action = ws.config.remove_on_exit ? 'remove' : ws.config.ttl_action;
        this.log.info({ workspace: id, action }, 'ttl expired');
        if (action === 'remove') await this.delete(null, id, 'ttl');
        else {
          if (action === 'pause' && ws.state === 'running') await this.pause(adminPrincipal, id);
          else if (ws.state !== 'stopped' && ws.state !== 'failed') await this.stop(null, id, 'ttl');
          await this.db.updateTable('workspaces').set({ ttl_expires_at: null }).where('id', '=', id).execute();
        }
        handled++;
      } catch (err) {
        this.log.error({ workspace: id, err }, 'ttl action failed');
      }
    }
    return handled;
  }

  /**
   * Startup reconcile (E2B's startupreclaim): compare the store with the
   * host. Interrupted creations and deletions are finished, workspaces that
   * should run but died are started again, sandboxes of this host that the
   * store does not know are reported. Returns a per-action summary.
   */
  async reconcile(): Promise<Record<string, number>> {
    const summary: Record<string, number> = { adopted: 0, restarted: 0, deleted: 0, orphans_removed: 0, failed: 0 };
    const rows = (await this.db.selectFrom('workspaces').selectAll().execute()).map(decodeWorkspace);
    const known = new Set(rows.map((r) => r.id));
    // One listing of the host's sandboxes: where it carries states, no per-workspace probe is needed.
    const listing = await this.host.listSandboxes().catch((err) => {
      this.log.warn({ err }, 'cannot list the host sandboxes: probing each workspace');
      return null;
    });
    const listedState = new Map((listing ?? []).filter((s) => s.state).map((s) => [s.id, s.state!]));
    // Host probes cost a process spawn each: check several workspaces at once.
    await eachLimited(rows, 8, async (ws) => {
      try {
        if (ws.state === 'deleting' || ws.state === 'deleted') {
          await this.delete(null, ws.id, 'reconcile');
          summary.deleted!++;
        } else if (ws.state === 'provisioning') {
          this.startProvisioning(ws);
          summary.restarted!++;
        } else if (ws.state === 'running' || ws.state === 'paused') {
          const onHost = listedState.get(ws.id) ?? await this.host.state(sandboxRef(ws));
          if (onHost === 'running' || onHost === 'paused') {
            summary.adopted!++;
            return;
          }
          this.log.warn({ workspace: ws.id, host_state: onHost }, 'workspace died while hearthd was away: starting it again');
          await this.host.stop(sandboxRef(ws)).catch(() => undefined);
          const restarted = await this.transition(ws, 'stopped', { provisioning: null });
          await this.transition(restarted, 'provisioning', { generation: ws.generation + 1, provisioning: { ...this.freshProvisioning(now()), message: 'restarting after host restart' } });
          this.startProvisioning((await this.byId(ws.id))!);
          summary.restarted!++;
        }
      } catch (err) {
        summary.failed!++;
        this.log.error({ workspace: ws.id, err }, 'reconcile failed for workspace');
      }
    });
    // What this instance provably owns but the store does not know (a store restored from a backup,
    // a crash between steps): removed. The host decides what is provably its own (its runc root,
    // run dir, data dir and bridge); anything else is never touched.
    const slots = new Set(rows.filter((r) => r.slotIndex !== null).map((r) => r.slotIndex!));
    const sweep = await this.host.removeOrphans({ ids: known, slots }, listing?.map((s) => s.id)).catch((err) => {
      this.log.error({ err }, 'orphan sweep failed');
      return null;
    });
    if (sweep) {
      summary.orphans_removed = sweep.sandboxes.length + sweep.dirs.length + sweep.slots.length;
      summary.failed! += sweep.failed.length;
      if (summary.orphans_removed || sweep.failed.length) this.log.warn({ ...sweep }, 'removed what the store does not know');
    }
    return summary;
  }

  /** Wait for all in-flight provisioning (shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()]);
  }
}

/** The principal of hearthd's own background work (reaper, reconcile). */
/** Run `fn` over `items` with at most `limit` in flight. */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => { while (next < items.length) await fn(items[next++]!); };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export const adminPrincipal: Principal = { kind: 'key', clientId: 'hearthd', admin: true, namespace: null, workspaceId: null, grants: ALL_GRANTS };
