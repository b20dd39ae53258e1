/** Spending quotas and overdraft (§23.4). */
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { bodyObject, param, queryInt, queryString, type Json } from '../parse.ts';
import { parseRange } from '../../control/usage.ts';

export function creditRoutes(r: RouteTable, ctx: ApiContext): void {
  const ns = ctx.namespaces;
  r.add('POST', '/credits/namespace-quota', 'namespace:admin', async (req, _reply, p) => ({ success: true, data: await ns.setQuota(p, bodyObject(req.body)) }));
  r.add('POST', '/credits/reset-quota', 'namespace:admin', async (req, _reply, p) => ({ success: true, data: await ns.resetQuota(p, bodyObject(req.body)) }));
  r.add('GET', '/credits/namespaces', 'namespace:read', async (req, _reply, p) => {
    const q = req.query as Json;
    await ctx.meter?.tick();
    const list = await ns.list(p, { limit: queryInt(q, 'limit', 50, 1, 500), offset: queryInt(q, 'offset', 0, 0, 1_000_000), status: queryString(q, 'status'), search: queryString(q, 'search') });
    const data = [];
    for (const n of list.data) {
      const usage = await ctx.usage.namespace(n.slug, parseRange({}, 30), 'day');
      data.push({ ...n, spend: usage.totals.credits, quotas: await ns.quotasOf(n.slug), services: { workspace_vm: usage.totals.credits } });
    }
    return { success: true, data, pagination: list.pagination };
  });
  r.add('GET', '/credits/namespaces/:namespace', 'namespace:read', async (req, _reply, p) => {
    const n = await ns.find(p, param(req.params, 'namespace'));
    const days = queryInt(req.query as Json, 'days', 30, 1, 3660);
    await ctx.meter?.tick();
    const usage = await ctx.usage.namespace(n.slug, parseRange({}, days), 'day');
    return { success: true, data: { namespace: n, quotas: await ns.quotasOf(n.slug), usage: usage.totals, services: { workspace_vm: usage.totals }, timeline: usage.buckets, workspaces: usage.workspaces } };
  });
  r.add('POST', '/credits/defaults', 'namespace:admin', async (req, _reply, p) => ({ success: true, data: await ns.setDefaultQuota(p, bodyObject(req.body)) }));
  r.add('GET', '/credits/defaults', 'namespace:read', async (req) => {
    const q = req.query as Json;
    return { success: true, data: await ns.getDefaultQuota(queryString(q, 'level') ?? 'namespace', queryString(q, 'service') ?? '') };
  });
  r.add('GET', '/credits/defaults/all', 'namespace:read', async (req) => ({ success: true, data: await ns.allDefaultQuotas(queryString(req.query as Json, 'level') ?? 'namespace') }));
  r.add('DELETE', '/credits/defaults', 'namespace:admin', async (req) => {
    const b = bodyObject(req.body);
    await ns.deleteDefaultQuota(String(b.level ?? 'namespace'), String(b.service ?? ''));
    return { success: true, deleted: true };
  });
  r.add('POST', '/credits/defaults/toggle-auto-apply', 'namespace:admin', async (req) => {
    const b = bodyObject(req.body);
    return { success: true, data: await ns.toggleDefaultAutoApply(String(b.level ?? 'namespace'), String(b.service ?? ''), b.autoApply === true) };
  });
}
