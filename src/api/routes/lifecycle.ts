/** Lifecycle (§6) and metadata (§16) of a workspace. */
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { bodyObject, param } from '../parse.ts';
import { publicStatus } from '../../core/lifecycle.ts';
import type { Workspace } from '../../control/workspaces/row.ts';
import type { SnapshotSupport } from '../../control/snapshots.ts';
import { lifecycleTtlRemoves, pingTtlRemoves, removalBody } from '../grant-rules.ts';

/**
 * `snapshot_supported` answers "does sleep keep running programs": true when
 * the driver's snapshots capture memory (a microVM), with the reason when not.
 */
export function lifecycleView(ws: Workspace, lastActivity: number, support: SnapshotSupport): Record<string, unknown> {
  const running = ws.state === 'running';
  const idle = (ws.config.idle as { suspend_after: number; stop_after: number } | null | undefined) ?? null;
  return {
    mode: ws.mode,
    status: publicStatus(ws.state),
    ttl: ws.config.ttl,
    ttl_seconds: ws.config.ttl_seconds,
    ttl_action: ws.config.ttl_action,
    remove_on_exit: ws.config.remove_on_exit,
    restart_policy: ws.config.restart_policy,
    max_restarts: ws.config.max_restarts ?? null,
    restart_info: null,
    uptime: running ? Math.round((Date.now() - Date.parse(ws.stateChangedAt)) / 1000) : 0,
    expires_at: ws.ttlExpiresAt,
    created_at: ws.createdAt,
    idle,
    last_activity_at: new Date(lastActivity).toISOString(),
    snapshot_supported: support.memory,
    snapshot_unavailable_reason: support.memory ? null : `${support.reason}; idle sleep keeps files, not memory, and the next request wakes the workspace`,
  };
}

export function lifecycleRoutes(r: RouteTable, ctx: ApiContext, opts: { minIdleSeconds: number }): void {
  const svc = ctx.workspaces;
  const reply = (ws: Workspace) => ({ success: true, workspace_id: ws.id, ...lifecycleView(ws, svc.lastActivity(ws), ctx.snapshots.support(ws)) });

  r.add('GET', '/workspace/:id/lifecycle', 'workspace:read', async (req, _r, p) => reply(await svc.find(p, param(req.params, 'id'))));
  r.add('POST', '/workspace/:id/lifecycle/permanent', 'workspace:write', async (req, _r, p) => reply(await svc.makePermanent(p, param(req.params, 'id'), bodyObject(req.body))));
  r.add('POST', '/workspace/:id/lifecycle/temporary', 'workspace:write', { body: removalBody(''), state: [lifecycleTtlRemoves] }, async (req, _r, p) => reply(await svc.makeTemporary(p, param(req.params, 'id'), bodyObject(req.body))));
  r.add('PUT', '/workspace/:id/lifecycle/ttl', 'workspace:write', { body: removalBody(''), state: [lifecycleTtlRemoves] }, async (req, _r, p) => reply(await svc.updateTtl(p, param(req.params, 'id'), bodyObject(req.body))));
  r.add('PUT', '/workspace/:id/lifecycle/idle', 'workspace:write', async (req, _r, p) => {
    const ws = await svc.setIdle(p, param(req.params, 'id'), bodyObject(req.body), opts.minIdleSeconds);
    return { success: true, idle: (ws.config.idle as unknown) ?? null };
  });
  r.add('POST', '/workspace/:id/ping', 'workspace:write', { state: [pingTtlRemoves] }, async (req, _r, p) => reply(await svc.ping(p, param(req.params, 'id'), bodyObject(req.body))));

  r.add('GET', '/workspace/:id/metadata', 'workspace:read', async (req, _r, p) => ({ success: true, metadata: await svc.metadata(await svc.find(p, param(req.params, 'id'))) }));
  r.add('PUT', '/workspace/:id/metadata', 'workspace:write', async (req, _r, p) => ({ success: true, metadata: await svc.setMetadata(p, param(req.params, 'id'), bodyObject(req.body).metadata, false) }));
  r.add('PATCH', '/workspace/:id/metadata', 'workspace:write', async (req, _r, p) => ({ success: true, metadata: await svc.setMetadata(p, param(req.params, 'id'), bodyObject(req.body).metadata, true) }));
}
