/** Workspace usage (§15): metered resource-seconds in usage units. */
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { param, queryInt, queryString, type Json } from '../parse.ts';
import { parseRange } from '../../control/usage.ts';
import { ValidationFailed } from '../../core/errors.ts';

export function usageRoutes(r: RouteTable, ctx: ApiContext): void {
  r.add('GET', '/workspace/usage', 'workspace:read', async (req, _reply, p) => {
    await ctx.meter?.tick();
    const q = req.query as Json;
    // Usage outlives workspaces: a namespace's report includes deleted ones.
    const namespace = p.namespace ?? queryString(q, 'namespace') ?? null;
    const ids = p.workspaceId !== null ? [p.workspaceId] : null;
    const report = await ctx.usage.many(ids, namespace, parseRange(q));
    return { success: true, ...report };
  });
  // The activity log (control/activity.ts): every state-changing call in the caller's scope, newest first.
  r.add('GET', '/workspace/activity', 'workspace:read', async (req, _reply, p) => {
    const q = req.query as Json;
    const limit = queryInt(q, 'limit', 100, 1, 1000);
    const offset = queryInt(q, 'offset', 0, 0, 1_000_000);
    const data = ctx.activity ? await ctx.activity.list(p, { limit, offset, workspaceId: queryString(q, 'workspace_id') }) : [];
    return { success: true, data, activity: data, limit, offset };
  });

  r.add('GET', '/workspace/:id/usage', 'workspace:read', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    const q = req.query as Json;
    const groupBy = queryString(q, 'groupBy') ?? 'hour';
    if (groupBy !== 'hour' && groupBy !== 'day') throw new ValidationFailed('groupBy', 'groupBy must be "hour" or "day"');
    await ctx.meter?.tick();
    return { success: true, ...(await ctx.usage.workspace(ws.id, parseRange(q), groupBy)) };
  });
  r.add('GET', '/workspace/:id/usage/totals', 'workspace:read', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    await ctx.meter?.tick();
    const report = await ctx.usage.workspace(ws.id, { from: ws.createdAt, to: new Date(Date.now() + 3_600_000).toISOString() });
    return { success: true, workspace_id: ws.id, totals: report.totals };
  });
  r.add('GET', '/workspace/:id/usage/credits/chart', 'workspace:read', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    await ctx.meter?.tick();
    const report = await ctx.usage.workspace(ws.id, parseRange(req.query as Json), 'day');
    return { success: true, workspace_id: ws.id, points: report.buckets.map((b) => ({ timestamp: b.timestamp, credits: b.credits })) };
  });
  // Usage is the billing record and what spending quotas are counted from: a
  // tenant wiping it would erase its own bill and reset its quota. Only the
  // operator's admin key may.
  r.add('DELETE', '/workspace/:id/usage', 'admin', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    return { success: true, deleted: await ctx.usage.wipe(ws.id) };
  });
  // Hearth meters every workspace all the time; tracking switches are accepted for compatibility.
  for (const verb of ['start', 'stop'] as const) {
    r.add('POST', `/workspace/:id/usage/tracking/${verb}`, 'workspace:write', async (req, _reply, p) => {
      const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
      return { success: true, workspace_id: ws.id, tracking: true, message: 'Hearth meters every workspace continuously' };
    });
  }
}
