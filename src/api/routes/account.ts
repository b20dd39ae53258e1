/** Quota and estimate (§4), scoped tokens (§24). The images catalog (§19) is in images.ts. */
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { bodyObject, type Json } from '../parse.ts';
import { ValidationFailed, NotFound } from '../../core/errors.ts';
import { DEFAULT_BOUNDS } from '../../core/workspace-spec.ts';
import { parseTokenGrants } from '../../core/grants.ts';
import { hourlyCredits, PRICE_PER_HOUR } from '../../core/pricing.ts';


export function accountRoutes(r: RouteTable, ctx: ApiContext): void {
  r.add('GET', '/workspace/quota', 'workspace:read', async (_req, _reply, p) => {
    const c = await ctx.workspaces.counts(p);
    const max = ctx.workspaces.capacity;
    const limits = { cpus: DEFAULT_BOUNDS.maxCpus, memory_mb: DEFAULT_BOUNDS.maxMemoryMb, disk_size_mb: DEFAULT_BOUNDS.maxDiskMb };
    const canCreate = c.count < max;
    return {
      success: true, plan: 'self-hosted', plan_label: 'Self-hosted', max_workspaces: max, current_workspaces: c.count,
      limits, pool: null,
      pool_usage: { count: c.count, cpus: c.cpus, memory_mb: c.memory_mb, disk_size_mb: c.disk_size_mb },
      running_pool: null,
      running_pool_usage: { count: c.running, cpus: c.running_cpus, memory_mb: c.running_memory_mb },
      can_create: canCreate, reason: canCreate ? null : 'host workspace capacity reached',
    };
  });

  r.add('GET', '/workspace/estimate', 'workspace:read', async (req) => {
    const q = req.query as Json;
    const num = (k: string, d: number) => {
      const v = q[k];
      if (v === undefined || v === '') return d;
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new ValidationFailed(k, `${k} must be a non-negative number`);
      return n;
    };
    const cpu = num('cpu', 1), ramMb = num('ram_mb', 512), diskMb = num('disk_mb', 4096);
    const hourly = hourlyCredits(cpu, ramMb, diskMb);
    const round = (x: number) => Math.round(x * 10000) / 10000;
    return {
      success: true, cpu, ram_mb: ramMb, disk_mb: diskMb, unit: 'credits',
      hourly: round(hourly), daily: round(hourly * 24), monthly: round(hourly * 24 * 30),
      prices_per_hour: PRICE_PER_HOUR,
    };
  });

  r.add('POST', '/tokens', 'admin', async (req, _reply, p) => {
    const b = bodyObject(req.body);
    const scope = b.scope;
    if (scope !== 'namespace' && scope !== 'workspace') throw new ValidationFailed('scope', 'scope must be "namespace" or "workspace"');
    const ttl = b.ttl === undefined ? 900 : Number(b.ttl);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 3600) throw new ValidationFailed('ttl', 'ttl must be a whole number of seconds between 1 and 3600');
    let namespace: string | null = null;
    let workspace: string | null = null;
    let namespaceId: string | null = null;
    if (scope === 'namespace') {
      if (typeof b.namespace !== 'string' || !b.namespace) throw new ValidationFailed('namespace', 'namespace is required for a namespace token');
      // The SDK may pass the namespace's id: tokens are bound to the slug (what
      // workspaces name), so an id resolves to it rather than silently matching nothing.
      const ns = await ctx.namespaces.find(p, b.namespace).catch((e) => { if (e instanceof NotFound) return null; throw e; });
      namespace = ns?.slug ?? b.namespace;
      namespaceId = ns?.id ?? null;
    } else {
      if (typeof b.workspaceId !== 'string' || !b.workspaceId) throw new ValidationFailed('workspaceId', 'workspaceId is required for a workspace token');
      const ws = await ctx.workspaces.find(p, b.workspaceId).catch((e) => { throw e instanceof NotFound ? new ValidationFailed('workspaceId', e.message) : e; });
      workspace = ws.id;
      namespace = ws.namespace;
      if (namespace) namespaceId = (await ctx.namespaces.find(p, namespace).catch(() => null))?.id ?? null;
    }
    const label = typeof b.label === 'string' ? b.label.slice(0, 200) : null;
    if (b.permissions !== undefined && (typeof b.permissions !== 'object' || b.permissions === null || Array.isArray(b.permissions))) {
      throw new ValidationFailed('permissions', 'permissions must be an object');
    }
    const grants = parseTokenGrants(b.permissions, scope);
    const { token, expiresAt } = await ctx.signer.sign({ kind: 'access', sub: p.clientId, scope, namespace, namespace_id: namespaceId, workspace, label, grants }, ttl);
    return { success: true, token, expiresAt: expiresAt.toISOString(), scope, ttl, permissions: grants };
  });

  // Early revocation (§24: "blacklisting jti"). Hearth extension.
  r.add('POST', '/tokens/revoke', 'admin', async (req) => {
    const b = bodyObject(req.body);
    if (typeof b.token !== 'string') throw new ValidationFailed('token', 'token is required');
    if (!(await ctx.keys.revokeToken(b.token))) return { success: true, revoked: false, reason: 'token already invalid or expired' };
    return { success: true, revoked: true };
  });
}
