/** Resources (§11) and the workspace disk (§18: /overlay): parse → authorize → one service call → shape. */
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { bodyObject, param, queryInt, type Json } from '../parse.ts';
import { ValidationFailed } from '../../core/errors.ts';
import type { ResizeResult } from '../../control/resources.ts';
import { publicStatus } from '../../core/lifecycle.ts';

function resizeBody(r: ResizeResult): Json {
  const { compute, disk } = r.applied;
  return {
    success: true, updated: r.updated, relaunched: r.relaunched, status: publicStatus(r.workspace.state),
    // Which changes are live now and which wait for the next start (microVM memory, a disk the host cannot grow online).
    applied: { cpus_memory: compute, disk },
    pending_restart: compute === 'next-start' || disk === 'next-start',
  };
}

export function resourceRoutes(r: RouteTable, ctx: ApiContext): void {
  r.add('PUT', '/workspace/:id/resources', 'workspace:write', async (req, _reply, p) =>
    resizeBody(await ctx.workspaces.resize(p, param(req.params, 'id'), bodyObject(req.body), false)));

  r.add('PATCH', '/workspace/:id/resources', 'workspace:write', async (req, _reply, p) =>
    resizeBody(await ctx.workspaces.resize(p, param(req.params, 'id'), bodyObject(req.body), true)));

  r.add('GET', '/workspace/:id/overlay', 'workspace:read', async (req, _reply, p) => {
    const limit = queryInt(req.query as Json, 'limit', 1000, 1, 10_000);
    const { listing } = await ctx.workspaces.overlay(p, param(req.params, 'id'), limit);
    return { success: true, ...listing };
  });

  r.add('GET', '/workspace/:id/overlay/usage', 'workspace:read', async (req, _reply, p) => {
    const { usage } = await ctx.workspaces.diskUsage(p, param(req.params, 'id'));
    return { success: true, usage, ...usage };
  });

  r.add('PUT', '/workspace/:id/overlay/resize', 'workspace:write', async (req, _reply, p) => {
    const b = bodyObject(req.body);
    const size = b.size_mb ?? b.disk_size_mb;
    if (size === undefined) throw new ValidationFailed('size_mb', 'size_mb is required: the new disk size in MB (disks only grow)');
    const out = await ctx.workspaces.resize(p, param(req.params, 'id'), { disk_size_mb: size, ...(b.apply !== undefined ? { apply: b.apply } : {}) }, true);
    return { success: true, size_mb: out.updated.disk_size_mb, applied: out.applied.disk, relaunched: out.relaunched, pending_restart: out.applied.disk === 'next-start' };
  });

  r.add('POST', '/workspace/:id/overlay/sync', 'workspace:write', async (req, _reply, p) => {
    const guestSync = async (ws: Parameters<typeof ctx.agent.call>[0]) => {
      const res = await ctx.agent.call(ws, 'POST', '/exec', { cmd: ['sync'], exec_mode: 'direct', timeout_seconds: 120, keep_logs: false }, { timeoutMs: 130_000 });
      return res.exit_code === 0;
    };
    const out = await ctx.workspaces.syncDisk(p, param(req.params, 'id'), guestSync);
    return { success: true, synced: true, guest: out.guest, host: out.host };
  });
}
