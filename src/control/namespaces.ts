/**
 * Namespaces (§23): one per customer, with status, resource limits,
 * spending quotas and an activity log. Also the admission control the
 * workspace service consults before creating, starting or resizing
 * (inside its create lock, so limits cannot be raced past).
 */
import { revokeNamespaceKeys } from '../auth/keys.ts';
import type { Logger } from 'pino';
import type { Db, NamespaceTable, QuotaRow } from '../store/db.ts';
import { likeInsensitive } from '../store/dialect.ts';
import type { Principal } from '../auth/principal.ts';
import { AlreadyExists, Forbidden, NotFound, QuotaExceeded, StateConflict, ValidationFailed } from '../core/errors.ts';
import {
  NAMESPACE_STATUSES, NAMESPACE_TYPES, OVERDRAFT_ACTIONS, assertActive, checkLimits, normalizeService, normalizeSlug, parseLimits,
  quotaExceeded, type ResourceLimits,
} from '../core/namespace-spec.ts';
import type { WorkspaceConfig } from '../core/workspace-spec.ts';
import { randomId } from '../auth/secrets.ts';
import type { NamespaceWorkspaces } from './namespace-workspaces.ts';

const now = () => new Date().toISOString();

export interface NamespaceData {
  id: string;
  client_id: string;
  name: string;
  slug: string;
  description: string | null;
  status: string;
  type: string;
  is_default: boolean;
  metadata: Record<string, unknown> | null;
  tags: string[];
  resource_limits: ResourceLimits | null;
  created_at: string;
  updated_at: string;
  last_active_at: string | null;
}

function view(r: NamespaceTable): NamespaceData {
  return {
    id: r.id, client_id: r.client_id, name: r.name, slug: r.slug, description: r.description, status: r.status, type: r.type,
    is_default: r.is_default === 1, metadata: r.metadata ? JSON.parse(r.metadata) : null, tags: r.tags ? JSON.parse(r.tags) : [],
    resource_limits: r.resource_limits ? JSON.parse(r.resource_limits) : null,
    created_at: r.created_at, updated_at: r.updated_at, last_active_at: r.last_active_at,
  };
}

export function quotaView(q: QuotaRow): Record<string, unknown> {
  return {
    id: q.id, client_id: q.client_id, namespace: q.namespace, service: q.service, quota_limit: q.quota_limit,
    quota_used: Math.round(q.quota_used * 1e6) / 1e6, overdraft: q.overdraft, on_overdraft_action: q.on_overdraft_action,
    notification_thresholds: q.notification_thresholds ? JSON.parse(q.notification_thresholds) : null,
    last_threshold_fired: q.last_threshold_fired, enabled: q.enabled === 1, exceeded: quotaExceeded(q), tripped_at: q.tripped_at,
    created_at: q.created_at, updated_at: q.updated_at,
  };
}

/** Where a deleted namespace's usage is kept: `~` is not allowed in slugs, so no namespace can claim it. */
export function deletedNamespaceLabel(slug: string, id: string): string {
  return `${slug}~deleted~${id}`;
}

export class NamespaceService {
  /** Namespaces whose workspaces are being stopped for their quota right now. */
  private readonly stopping = new Set<string>();

  /**
   * `workspaces` is asked when needed, never at construction: the workspace
   * service is built after this one, with this one as its admission.
   */
  constructor(private readonly db: Db, private readonly log: Logger, private readonly workspaces: () => NamespaceWorkspaces) {}

  private ops(): NamespaceWorkspaces {
    return this.workspaces();
  }

  // ---------------------------------------------------------------- lookup

  private async row(idOrSlug: string): Promise<NamespaceTable | undefined> {
    return this.db.selectFrom('namespaces').selectAll()
      .where((eb) => eb.or([eb('id', '=', idOrSlug), eb('slug', '=', idOrSlug)])).executeTakeFirst();
  }

  /** A namespace the principal may see; others look like "not found". */
  async find(p: Principal, idOrSlug: string): Promise<NamespaceData> {
    const r = await this.row(idOrSlug);
    if (!r || (p.namespace !== null && p.namespace !== r.slug)) throw new NotFound('namespace', idOrSlug);
    return view(r);
  }

  async list(p: Principal, q: { limit: number; offset: number; status?: string; type?: string; search?: string; sortBy?: string; sortOrder?: string }) {
    let query = this.db.selectFrom('namespaces');
    if (p.namespace) query = query.where('slug', '=', p.namespace);
    if (q.status) query = query.where('status', '=', q.status);
    if (q.type) query = query.where('type', '=', q.type);
    // Case-insensitive on both stores, as SQLite's LIKE is (store/dialect.ts).
    const like = likeInsensitive(this.db);
    if (q.search) query = query.where((eb) => eb.or([eb('name', like, `%${q.search}%`), eb('slug', like, `%${q.search}%`)]));
    const total = Number((await query.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    const sortBy = (['created_at', 'updated_at', 'name'] as const).find((s) => s === q.sortBy) ?? 'created_at';
    const order = q.sortOrder?.toUpperCase() === 'ASC' ? 'asc' : 'desc';
    const rows = await query.selectAll().orderBy(sortBy, order).orderBy('id').limit(q.limit).offset(q.offset).execute();
    return { data: rows.map(view), pagination: { total, limit: q.limit, offset: q.offset } };
  }

  // ---------------------------------------------------------------- changes

  async create(p: Principal, b: Record<string, unknown>): Promise<NamespaceData> {
    if (typeof b.name !== 'string' || !b.name.trim() || b.name.length > 255) throw new ValidationFailed('name', 'name is required (1–255 characters)');
    const slug = normalizeSlug(b.slug, b.name);
    if (await this.row(slug)) throw new AlreadyExists('namespace', slug);
    const type = b.type ?? 'default';
    if (!NAMESPACE_TYPES.includes(type as never)) throw new ValidationFailed('type', `type must be one of ${NAMESPACE_TYPES.join(', ')}`);
    const tags = b.tags === undefined ? [] : b.tags;
    if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) throw new ValidationFailed('tags', 'tags must be a list of strings');
    if (b.metadata !== undefined && (typeof b.metadata !== 'object' || Array.isArray(b.metadata))) throw new ValidationFailed('metadata', 'metadata must be an object');
    const limits = parseLimits(b.resource_limits);
    const at = now();
    const row: NamespaceTable = {
      id: randomId('ns_'), client_id: p.clientId, name: b.name.trim(), slug, description: typeof b.description === 'string' ? b.description : null,
      status: 'active', type: type as string, is_default: b.isDefault === true ? 1 : 0,
      metadata: b.metadata ? JSON.stringify(b.metadata) : null, tags: JSON.stringify(tags), resource_limits: limits ? JSON.stringify(limits) : null,
      created_at: at, updated_at: at, last_active_at: null,
    };
    await this.db.insertInto('namespaces').values(row).execute();
    await this.applyDefaultQuotas(p, slug);
    await this.activity(row.id, p, 'namespace.created', `namespace ${slug} created`);
    return view(row);
  }

  async ensure(p: Principal, b: Record<string, unknown>): Promise<{ created: boolean; data: NamespaceData }> {
    const key = typeof b.slug === 'string' ? b.slug : typeof b.name === 'string' ? b.name : null;
    if (!key) throw new ValidationFailed('slug', 'ensure needs a slug or a name');
    const existing = (await this.row(key)) ?? (typeof b.name === 'string' ? await this.db.selectFrom('namespaces').selectAll().where('name', '=', b.name).executeTakeFirst() : undefined);
    if (existing) return { created: false, data: await this.find(p, existing.slug) };
    return { created: true, data: await this.create(p, { ...b, name: b.name ?? key }) };
  }

  async update(p: Principal, idOrSlug: string, b: Record<string, unknown>): Promise<NamespaceData> {
    const ns = await this.find(p, idOrSlug);
    const set: Partial<NamespaceTable> = { updated_at: now() };
    const changes: Record<string, unknown> = {};
    if (b.name !== undefined) {
      if (typeof b.name !== 'string' || !b.name.trim()) throw new ValidationFailed('name', 'name must be a non-empty string');
      set.name = b.name.trim(); changes.name = set.name;
    }
    if (b.description !== undefined) { set.description = b.description === null ? null : String(b.description); changes.description = set.description; }
    if (b.type !== undefined) {
      if (!NAMESPACE_TYPES.includes(b.type as never)) throw new ValidationFailed('type', `type must be one of ${NAMESPACE_TYPES.join(', ')}`);
      set.type = b.type as string; changes.type = b.type;
    }
    if (b.status !== undefined) {
      if (!NAMESPACE_STATUSES.includes(b.status as never)) throw new ValidationFailed('status', `status must be one of ${NAMESPACE_STATUSES.join(', ')}`);
      if (b.status === 'suspended') return this.suspend(p, ns.id);
      set.status = b.status as string; changes.status = b.status;
    }
    if (b.tags !== undefined) {
      if (!Array.isArray(b.tags) || b.tags.some((t) => typeof t !== 'string')) throw new ValidationFailed('tags', 'tags must be a list of strings');
      set.tags = JSON.stringify(b.tags); changes.tags = b.tags;
    }
    if (b.metadata !== undefined) { set.metadata = b.metadata === null ? null : JSON.stringify(b.metadata); changes.metadata = b.metadata; }
    if (b.resource_limits !== undefined) {
      const limits = parseLimits(b.resource_limits, ns.resource_limits);
      set.resource_limits = limits ? JSON.stringify(limits) : null; changes.resource_limits = limits;
    }
    await this.db.updateTable('namespaces').set(set).where('id', '=', ns.id).execute();
    await this.activity(ns.id, p, 'namespace.updated', `namespace ${ns.slug} updated`, changes);
    return this.find(p, ns.id);
  }

  async delete(p: Principal, idOrSlug: string, deleteWorkspaces: boolean): Promise<{ deleted_workspaces: number }> {
    const ns = await this.find(p, idOrSlug);
    const ids = await this.ops().idsInNamespace(ns.slug);
    if (ids.length && !deleteWorkspaces) {
      throw new StateConflict(`namespace ${ns.slug} still has ${ids.length} workspace(s)`, 'delete them first or pass { deleteWorkspaces: true }');
    }
    for (const id of ids) await this.ops().deleteSystem(id);
    await this.db.deleteFrom('namespace_quotas').where('namespace', '=', ns.slug).execute();
    // The tenant is gone: its keys die with it, and its usage is kept for the
    // operator's records under a name no new namespace can take, so a slug
    // created again starts with no spend and no history.
    const revokedKeys = await revokeNamespaceKeys(this.db, ns.slug);
    await this.db.updateTable('usage_buckets').set({ namespace: deletedNamespaceLabel(ns.slug, ns.id) }).where('namespace', '=', ns.slug).execute();
    await this.db.deleteFrom('namespaces').where('id', '=', ns.id).execute();
    if (revokedKeys) this.log.info({ namespace: ns.slug, revokedKeys }, 'namespace deleted: its API keys were revoked');
    await this.activity(ns.id, p, 'namespace.deleted', `namespace ${ns.slug} deleted with ${ids.length} workspace(s)`);
    return { deleted_workspaces: ids.length };
  }

  async suspend(p: Principal, idOrSlug: string): Promise<NamespaceData> {
    const ns = await this.find(p, idOrSlug);
    // Persist first: no create or start can slip in while we stop the running ones.
    await this.db.updateTable('namespaces').set({ status: 'suspended', updated_at: now() }).where('id', '=', ns.id).execute();
    const stopped = await this.stopAll(ns.slug, 'namespace');
    await this.activity(ns.id, p, 'namespace.suspended', `namespace ${ns.slug} suspended; ${stopped} workspace(s) stopped`);
    return this.find(p, ns.id);
  }

  async activate(p: Principal, idOrSlug: string): Promise<NamespaceData> {
    const ns = await this.find(p, idOrSlug);
    await this.db.updateTable('namespaces').set({ status: 'active', updated_at: now() }).where('id', '=', ns.id).execute();
    await this.activity(ns.id, p, 'namespace.activated', `namespace ${ns.slug} activated`);
    return this.find(p, ns.id);
  }

  async stopWorkspaces(p: Principal, idOrSlug: string): Promise<number> {
    const ns = await this.find(p, idOrSlug);
    const n = await this.stopAll(ns.slug, 'namespace');
    await this.activity(ns.id, p, 'namespace.workspaces_stopped', `${n} workspace(s) stopped`);
    return n;
  }

  private async stopAll(slug: string, reason: 'namespace' | 'quota'): Promise<number> {
    const ids = await this.ops().idsInNamespace(slug, ['running', 'paused', 'provisioning', 'sleeping']);
    for (const id of ids) {
      await this.ops().stopSystem(id, reason).catch((err) => this.log.error({ workspace: id, err }, 'stopping for namespace failed'));
    }
    return ids.length;
  }

  async activityLog(p: Principal, idOrSlug: string, limit: number, offset: number) {
    const ns = await this.find(p, idOrSlug);
    const rows = await this.db.selectFrom('namespace_activity').selectAll().where('namespace_id', '=', ns.id)
      .orderBy('id', 'desc').limit(limit).offset(offset).execute();
    return rows.map((r) => ({ ...r, namespace_id: r.namespace_id, changes: r.changes ? JSON.parse(r.changes) : null }));
  }

  async activity(namespaceId: string, p: Principal | null, action: string, description: string, changes?: unknown): Promise<void> {
    await this.db.insertInto('namespace_activity').values({
      namespace_id: namespaceId, user_id: p?.clientId ?? 'hearthd', action, description,
      changes: changes === undefined ? null : JSON.stringify(changes), created_at: now(),
    }).execute();
  }

  // ---------------------------------------------------------------- admission

  /**
   * Called by the workspace service inside its create lock. Resolves the
   * namespace (id or slug → slug), and refuses with the contract's errors
   * when it is suspended, over a resource limit, or blocked by its quota.
   */
  async admitCreate(p: Principal, namespace: string | null, config: WorkspaceConfig): Promise<string | null> {
    if (namespace === null) return null;
    let r = await this.row(namespace);
    if (!r) {
      // Account-level keys create namespaces on first use (as `ensure` does).
      if (p.namespace !== null || p.kind !== 'key') throw new NotFound('namespace', namespace);
      await this.create(p, { name: namespace, slug: namespace });
      r = (await this.row(namespace))!;
    }
    if (p.namespace !== null && p.namespace !== r.slug) throw new Forbidden(`this credential is limited to namespace ${p.namespace}`);
    assertActive(r.status, r.slug);
    await this.assertQuota(r.slug);
    const limits = r.resource_limits ? (JSON.parse(r.resource_limits) as ResourceLimits) : null;
    checkLimits(limits, await this.ops().usageNow(r.slug), config, true);
    await this.db.updateTable('namespaces').set({ last_active_at: now() }).where('id', '=', r.id).execute();
    return r.slug;
  }

  async admitStart(namespace: string | null): Promise<void> {
    if (namespace === null) return;
    const r = await this.row(namespace);
    if (!r) return;
    assertActive(r.status, r.slug);
    await this.assertQuota(r.slug);
  }

  async admitResize(namespace: string | null, workspaceId: string, config: WorkspaceConfig): Promise<void> {
    if (namespace === null) return;
    const r = await this.row(namespace);
    if (!r?.resource_limits) return;
    checkLimits(JSON.parse(r.resource_limits) as ResourceLimits, await this.ops().usageNow(r.slug, workspaceId), config, false);
  }

  private async assertQuota(slug: string): Promise<void> {
    const quotas = await this.db.selectFrom('namespace_quotas').selectAll().where('namespace', '=', slug).execute();
    for (const q of quotas) if (quotaExceeded(q)) throw new QuotaExceeded(slug, q.service, q.quota_used, q.quota_limit ?? 0);
  }

  // ---------------------------------------------------------------- quotas (§23.4)

  async setQuota(p: Principal, b: Record<string, unknown>) {
    const ns = await this.find(p, String(b.namespace ?? ''));
    const service = normalizeService(b.service);
    const limit = b.quotaLimit === null ? null : Number(b.quotaLimit);
    if (limit !== null && (!Number.isFinite(limit) || limit < 0)) throw new ValidationFailed('quotaLimit', 'quotaLimit must be a non-negative number or null');
    const overdraft = b.overdraft === undefined ? 0 : Number(b.overdraft);
    if (!Number.isFinite(overdraft) || overdraft < 0) throw new ValidationFailed('overdraft', 'overdraft must be a non-negative number');
    const action = b.onOverdraftAction ?? 'block';
    if (!OVERDRAFT_ACTIONS.includes(action as never)) throw new ValidationFailed('onOverdraftAction', `onOverdraftAction must be one of ${OVERDRAFT_ACTIONS.join(', ')}`);
    const thresholds = b.notificationThresholds;
    if (thresholds !== undefined && thresholds !== null && (!Array.isArray(thresholds) || thresholds.some((t) => typeof t !== 'number' || t <= 0 || t > 100))) {
      throw new ValidationFailed('notificationThresholds', 'notificationThresholds must be percentages in (0, 100]');
    }
    const at = now();
    await this.db.insertInto('namespace_quotas').values({
      client_id: p.clientId, namespace: ns.slug, service, quota_limit: limit, quota_used: 0, overdraft, on_overdraft_action: action as string,
      notification_thresholds: thresholds === undefined || thresholds === null ? null : JSON.stringify(thresholds),
      last_threshold_fired: null, enabled: 1, tripped_at: null, created_at: at, updated_at: at,
    }).onConflict((oc) => oc.columns(['namespace', 'service']).doUpdateSet({
      quota_limit: limit, overdraft, on_overdraft_action: action as string, updated_at: at,
      ...(thresholds !== undefined ? { notification_thresholds: thresholds === null ? null : JSON.stringify(thresholds) } : {}),
    })).execute();
    await this.activity(ns.id, p, 'quota.set', `${service} quota set to ${limit ?? 'unlimited'} (+${overdraft} overdraft, ${action})`);
    const q = await this.db.selectFrom('namespace_quotas').selectAll().where('namespace', '=', ns.slug).where('service', '=', service).executeTakeFirstOrThrow();
    await this.enforce(q);
    return quotaView((await this.db.selectFrom('namespace_quotas').selectAll().where('id', '=', q.id).executeTakeFirstOrThrow()));
  }

  async resetQuota(p: Principal, b: Record<string, unknown>) {
    const ns = await this.find(p, String(b.namespace ?? ''));
    const service = normalizeService(b.service);
    const res = await this.db.updateTable('namespace_quotas').set({ quota_used: 0, tripped_at: null, last_threshold_fired: null, updated_at: now() })
      .where('namespace', '=', ns.slug).where('service', '=', service).executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) throw new NotFound('quota', `${ns.slug}/${service}`);
    await this.activity(ns.id, p, 'quota.reset', `${service} quota usage reset`);
    return quotaView(await this.db.selectFrom('namespace_quotas').selectAll().where('namespace', '=', ns.slug).where('service', '=', service).executeTakeFirstOrThrow());
  }

  async quotasOf(slug: string) {
    return (await this.db.selectFrom('namespace_quotas').selectAll().where('namespace', '=', slug).execute()).map(quotaView);
  }

  /** Add metered credits to a namespace's quotas and apply the overdraft policy when one trips. */
  async charge(slug: string, credits: number): Promise<void> {
    if (credits <= 0) return;
    await this.db.updateTable('namespace_quotas').set((eb) => ({ quota_used: eb('quota_used', '+', credits), updated_at: now() }))
      .where('namespace', '=', slug).where('service', '=', 'workspace_vm').execute();
    const q = await this.db.selectFrom('namespace_quotas').selectAll().where('namespace', '=', slug).where('service', '=', 'workspace_vm').executeTakeFirst();
    if (q) await this.enforce(q);
  }

  private async enforce(q: QuotaRow): Promise<void> {
    if (!quotaExceeded(q)) return;
    if (!q.tripped_at) {
      await this.db.updateTable('namespace_quotas').set({ tripped_at: now() }).where('id', '=', q.id).execute();
      const ns = await this.row(q.namespace);
      if (ns) await this.activity(ns.id, null, 'quota.exceeded', `${q.service} quota exceeded (${q.quota_used.toFixed(4)} > ${q.quota_limit} + ${q.overdraft}); action ${q.on_overdraft_action}`);
      this.log.warn({ namespace: q.namespace, used: q.quota_used, limit: q.quota_limit, action: q.on_overdraft_action }, 'namespace quota exceeded');
    }
    // Stopped, never deleted: the customer's data stays. Detached on purpose: charge()
    // runs inside metering, which may hold a workspace's lock that stopping needs.
    if (q.on_overdraft_action === 'stop_workspaces' && !this.stopping.has(q.namespace)) {
      this.stopping.add(q.namespace);
      setImmediate(() => {
        this.stopAll(q.namespace, 'quota').finally(() => this.stopping.delete(q.namespace));
      });
    }
  }

  // ---------------------------------------------------------------- default quotas

  private async applyDefaultQuotas(p: Principal, slug: string): Promise<void> {
    const defaults = await this.db.selectFrom('default_quotas').selectAll().where('level', '=', 'namespace').where('auto_apply', '=', 1).where('enabled', '=', 1).execute();
    for (const d of defaults) {
      await this.setQuota(p, { namespace: slug, service: d.service, quotaLimit: d.quota_limit, overdraft: d.overdraft, onOverdraftAction: d.on_overdraft_action });
    }
  }

  async setDefaultQuota(p: Principal, b: Record<string, unknown>) {
    const service = normalizeService(b.service);
    const limit = b.quotaLimit === null ? null : Number(b.quotaLimit);
    if (limit !== null && (!Number.isFinite(limit) || limit < 0)) throw new ValidationFailed('quotaLimit', 'quotaLimit must be a non-negative number or null');
    const level = b.level ?? 'namespace';
    const action = b.onOverdraftAction ?? 'block';
    if (!OVERDRAFT_ACTIONS.includes(action as never)) throw new ValidationFailed('onOverdraftAction', `onOverdraftAction must be one of ${OVERDRAFT_ACTIONS.join(', ')}`);
    const at = now();
    await this.db.insertInto('default_quotas').values({
      client_id: p.clientId, level: String(level), service, quota_limit: limit, overdraft: Number(b.overdraft ?? 0), on_overdraft_action: String(action),
      auto_apply: b.autoApply === true ? 1 : 0, enabled: 1, created_at: at, updated_at: at,
    }).onConflict((oc) => oc.columns(['level', 'service']).doUpdateSet({
      quota_limit: limit, overdraft: Number(b.overdraft ?? 0), on_overdraft_action: String(action), ...(b.autoApply !== undefined ? { auto_apply: b.autoApply === true ? 1 : 0 } : {}), updated_at: at,
    })).execute();
    return this.getDefaultQuota(String(level), service);
  }

  async getDefaultQuota(level: string, service: string) {
    const d = await this.db.selectFrom('default_quotas').selectAll().where('level', '=', level).where('service', '=', normalizeService(service)).executeTakeFirst();
    if (!d) throw new NotFound('default quota', service);
    return { ...d, auto_apply: d.auto_apply === 1, enabled: d.enabled === 1 };
  }

  async allDefaultQuotas(level: string) {
    return (await this.db.selectFrom('default_quotas').selectAll().where('level', '=', level).execute()).map((d) => ({ ...d, auto_apply: d.auto_apply === 1, enabled: d.enabled === 1 }));
  }

  async deleteDefaultQuota(level: string, service: string): Promise<void> {
    await this.db.deleteFrom('default_quotas').where('level', '=', level).where('service', '=', normalizeService(service)).execute();
  }

  async toggleDefaultAutoApply(level: string, service: string, autoApply: boolean) {
    await this.db.updateTable('default_quotas').set({ auto_apply: autoApply ? 1 : 0, updated_at: now() }).where('level', '=', level).where('service', '=', normalizeService(service)).execute();
    return this.getDefaultQuota(level, service);
  }
}
