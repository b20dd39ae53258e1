/** Namespaces (§23.2, §23.3). */
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { bodyObject, param, queryInt, queryString, type Json } from '../parse.ts';
import { parseRange } from '../../control/usage.ts';
import { ValidationFailed } from '../../core/errors.ts';

export function namespaceRoutes(r: RouteTable, ctx: ApiContext): void {
  const ns = ctx.namespaces;

  r.add('POST', '/namespaces', 'namespace:admin', async (req, reply, p) => {
    reply.code(201);
    return { success: true, data: await ns.create(p, bodyObject(req.body)) };
  });
  r.add('POST', '/namespaces/ensure', 'namespace:admin', async (req, _reply, p) => ({ success: true, ...(await ns.ensure(p, bodyObject(req.body))) }));
  r.add('GET', '/namespaces', 'namespace:read', async (req, _reply, p) => {
    const q = req.query as Json;
    return {
      success: true,
      ...(await ns.list(p, {
        limit: queryInt(q, 'limit', 50, 1, 500), offset: queryInt(q, 'offset', 0, 0, 1_000_000),
        status: queryString(q, 'status'), type: queryString(q, 'type'), search: queryString(q, 'search'),
        sortBy: queryString(q, 'sortBy'), sortOrder: queryString(q, 'sortOrder'),
      })),
    };
  });
  r.add('GET', '/namespaces/:id', 'namespace:read', async (req, _reply, p) => ({ success: true, data: await ns.find(p, param(req.params, 'id')) }));
  r.add('PUT', '/namespaces/:id', 'namespace:admin', async (req, _reply, p) => ({ success: true, data: await ns.update(p, param(req.params, 'id'), bodyObject(req.body)) }));
  r.add('DELETE', '/namespaces/:id', 'namespace:admin', async (req, _reply, p) => {
    const b = bodyObject(req.body);
    if (b.deleteWorkspaces !== undefined && typeof b.deleteWorkspaces !== 'boolean') throw new ValidationFailed('deleteWorkspaces', 'deleteWorkspaces must be true or false');
    return { success: true, deleted: true, ...(await ns.delete(p, param(req.params, 'id'), b.deleteWorkspaces === true)) };
  });
  r.add('POST', '/namespaces/:id/suspend', 'namespace:admin', async (req, _reply, p) => ({ success: true, data: await ns.suspend(p, param(req.params, 'id')) }));
  r.add('POST', '/namespaces/:id/activate', 'namespace:admin', async (req, _reply, p) => ({ success: true, data: await ns.activate(p, param(req.params, 'id')) }));
  r.add('POST', '/namespaces/:id/stop-workspaces', 'namespace:admin', async (req, _reply, p) => ({ success: true, stopped: await ns.stopWorkspaces(p, param(req.params, 'id')) }));
  r.add('GET', '/namespaces/:id/activity', 'namespace:read', async (req, _reply, p) => {
    const q = req.query as Json;
    return { success: true, data: await ns.activityLog(p, param(req.params, 'id'), queryInt(q, 'limit', 50, 1, 500), queryInt(q, 'offset', 0, 0, 1_000_000)) };
  });
  r.add('GET', '/namespaces/:id/usage', 'namespace:read', async (req, _reply, p) => {
    const n = await ns.find(p, param(req.params, 'id'));
    const q = req.query as Json;
    const days = queryInt(q, 'days', 30, 1, 3660);
    await ctx.meter?.tick();
    const report = await ctx.usage.namespace(n.slug, parseRange({}, days), 'day');
    return { success: true, data: { namespace: n.slug, days, services: { workspace_vm: report.totals }, daily: report.buckets, workspaces: report.workspaces, quotas: await ns.quotasOf(n.slug) } };
  });
  r.add('GET', '/namespaces/:id/usage-units', 'namespace:read', async (req, _reply, p) => {
    const n = await ns.find(p, param(req.params, 'id'));
    const q = req.query as Json;
    const groupBy = queryString(q, 'groupBy') ?? 'day';
    if (groupBy !== 'hour' && groupBy !== 'day') throw new ValidationFailed('groupBy', 'groupBy must be "hour" or "day"');
    await ctx.meter?.tick();
    return { success: true, data: await ctx.usage.namespace(n.slug, parseRange(q), groupBy) };
  });
}
