/** Workspace collection and item routes (§4, §5). Parse → authorize → one service call → shape. */
import { WORKLOADS_PREFIX } from '../../core/agent-protocol.ts';
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { parseCreateRequest } from '../../core/workspace-spec.ts';
import { workspaceView } from '../views.ts';
import { bodyObject, param, queryInt, queryString, type Json } from '../parse.ts';
import type { Workspace } from '../../control/workspaces/row.ts';
import { ValidationFailed } from '../../core/errors.ts';
import { lifecycleView } from './lifecycle.ts';
import type { PublicAccessService } from '../../control/public-access.ts';
import { codeBody, configTtlRemoves, removalBody, stopRemoves } from '../grant-rules.ts';
import { parseNetworkUpdate } from './network-modes.ts';
import { DEFAULT_IMAGE, normalizeWorkspaceBody } from './workspace-fields.ts';

export function workspaceRoutes(r: RouteTable, ctx: ApiContext, publicAccess: Pick<PublicAccessService, 'summary' | 'setPublicAccess'>): void {
  const agent = ctx.agent;
  /** The network view with what is really exposed. */
  const network = async (ws: Workspace) => networkView(ws, ctx, (await publicAccess.summary(ws.id)).ports.length > 0);
  const view = (ws: Workspace) => workspaceView(ws, ctx.workspaces.endpoint(ws));
  const fieldOpts = { defaultImage: ctx.defaultImage ?? DEFAULT_IMAGE, minIdleSeconds: ctx.minIdleSeconds ?? 120 };

  r.add('POST', '/workspace', 'workspace:create', { body: [...removalBody('config.'), ...codeBody('config.')] }, async (req, reply, p) => {
    const spec = parseCreateRequest(normalizeWorkspaceBody(bodyObject(req.body), { create: true, ...fieldOpts }));
    const ws = await ctx.workspaces.create(p, spec);
    reply.code(201);
    return { success: true, workspace: view(ws) };
  });

  r.add('GET', '/workspace', 'workspace:read', async (req, _reply, p) => {
    const q = req.query as Json;
    const page = queryInt(q, 'page', 1, 1, 1_000_000);
    const limit = queryInt(q, 'limit', 50, 1, 500);
    const { workspaces, total } = await ctx.workspaces.list(p, {
      page, limit, status: queryString(q, 'status'), mode: queryString(q, 'mode'), namespace: queryString(q, 'namespace'),
    });
    return { success: true, workspaces: workspaces.map(view), total, page, limit };
  });

  r.add('GET', '/workspace/:id', 'workspace:read', async (req, _reply, p) => {
    return { success: true, workspace: view(await ctx.workspaces.find(p, param(req.params, 'id'))) };
  });

  r.add('GET', '/workspace/:id/details', 'workspace:read', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    const v = view(ws);
    const running = ws.slotIndex !== null && ws.state === 'running';
    // Live parts come from the host and the agent; a failure there leaves them empty rather than failing the whole view.
    const [stats, exposed, workloads] = await Promise.all([
      running ? ctx.workspaces.stats(ws).catch(() => null) : null,
      publicAccess.summary(ws.id),
      running ? agent.call(ws, 'GET', WORKLOADS_PREFIX).then((res) => (Array.isArray(res.workloads) ? res.workloads : []), () => []) : [],
    ]);
    return {
      success: true, workspace: v, lifecycle: lifecycleView(ws, ctx.workspaces.lastActivity(ws), ctx.snapshots.support(ws)), resources: v.resources,
      network: networkView(ws, ctx, exposed.ports.length > 0), public_access: exposed, workloads, stats,
    };
  });

  r.add('PUT', '/workspace/:id', 'workspace:write', { body: [...removalBody('config.'), ...codeBody('config.')], state: [configTtlRemoves] }, async (req, _reply, p) => {
    const ws = await ctx.workspaces.update(p, param(req.params, 'id'), normalizeWorkspaceBody(bodyObject(req.body), { create: false, ...fieldOpts }));
    return { success: true, workspace: view(ws) };
  });

  r.add('DELETE', '/workspace/:id', 'workspace:delete', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    await ctx.workspaces.delete(p, ws.id);
    return { success: true, deleted: true, id: ws.id };
  });

  r.add('DELETE', '/workspace/:id/lifecycle', 'workspace:delete', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    await ctx.workspaces.delete(p, ws.id);
    return { success: true, deleted: true, id: ws.id };
  });

  const power = (verb: 'start' | 'stop' | 'restart' | 'pause' | 'resume') =>
    r.add('POST', `/workspace/:id/${verb}`, 'workspace:write', verb === 'stop' ? { state: [stopRemoves] } : {}, async (req, _reply, p) => {
      const id = param(req.params, 'id');
      const ws = verb === 'stop' ? await ctx.workspaces.stop(p, id) : await ctx.workspaces[verb](p, id);
      return ws ? { success: true, workspace: view(ws), status: view(ws).status } : { success: true, deleted: true, status: 'deleted' };
    });
  for (const verb of ['start', 'stop', 'restart', 'pause', 'resume'] as const) power(verb);

  r.add('POST', '/workspace/:id/provisioning/retry', 'workspace:write', async (req, _reply, p) => {
    const ws = await ctx.workspaces.start(p, param(req.params, 'id'));
    return { success: true, workspace: view(ws) };
  });

  r.add('GET', '/workspace/:id/network', 'workspace:read', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    return { success: true, ...(await network(ws)) };
  });

  r.add('PATCH', '/workspace/:id/network', 'workspace:write', async (req, _reply, p) => {
    const b = bodyObject(req.body);
    // Every field is honoured or refused before anything changes (network-modes.ts): never a silent 200.
    const { config, publicAccess: open } = parseNetworkUpdate(b);
    const id = param(req.params, 'id');
    let ws = Object.keys(config).length ? await ctx.workspaces.update(p, id, { config }) : await ctx.workspaces.find(p, id);
    if (open !== undefined) {
      await publicAccess.setPublicAccess(p, ws.id, open);
      ws = await ctx.workspaces.find(p, ws.id);
    }
    return { success: true, ...(await network(ws)) };
  });

  // §7 applyOutboundIp: SNAT the workspace's egress to one of this host's addresses (null clears).
  r.add('POST', '/workspace/:id/network/ip', 'workspace:write', async (req, _reply, p) => {
    const b = bodyObject(req.body);
    const ip = b.ip === null || b.ip === '' ? null : b.ip;
    if (ip !== null && typeof ip !== 'string') throw new ValidationFailed('ip', 'ip must be an IPv4 address of this host, or null to clear it');
    // WorkspaceService.update checks the address (this host's, not another tenant's) and applies it live, once.
    const ws = await ctx.workspaces.update(p, param(req.params, 'id'), { config: { outbound_ip: ip } });
    return { success: true, ...(await network(ws)) };
  });

  r.add('GET', '/workspace/:id/resources', 'workspace:read', async (req, _reply, p) => {
    const ws = await ctx.workspaces.find(p, param(req.params, 'id'));
    return { success: true, cpus: ws.config.cpus, memory_mb: ws.config.memory_mb, disk_size_mb: ws.config.disk_size_mb, status: view(ws).status };
  });
}

export function networkView(ws: Workspace, ctx: ApiContext, exposed: boolean): Record<string, unknown> {
  const ep = ctx.workspaces.endpoint(ws);
  return {
    ip: ep?.ip ?? null,
    internal_ip: ep?.ip ?? null,
    allow_internet: ws.config.allow_internet,
    ingress: ws.config.ingress,
    egress: ws.config.egress,
    ingress_ports: Array.isArray(ws.config.ingress_ports) ? ws.config.ingress_ports : [],
    // Exposed ports route only while public access is on (network.update({ public_access })).
    public_access: exposed && ws.config.public_access !== false,
    public_access_enabled: ws.config.public_access !== false,
    private_links: [],
    outbound_mode: 'managed',
    outbound_ip: ctx.workspaces.outboundIp(ws),
  };
}
