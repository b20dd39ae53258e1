/** Mode and TTL: permanent ⇄ temporary, the TTL clock, keep-alive pings and the reaper that acts when time is up. */
import type { WorkspaceTable } from '../../store/db.ts';
import { mergeConfig } from '../../core/workspace-spec.ts';
import { StateConflict } from '../../core/errors.ts';
import { parseDuration } from '../../core/duration.ts';
import type { Principal } from '../../auth/principal.ts';
import { adminPrincipal, type WorkspaceDeps } from './deps.ts';
import { find } from './queries.ts';
import { remove } from './lifecycle.ts';
import { pause, stop } from './power.ts';
import { touch } from './idle.ts';
import { byId, current, now, type Workspace } from './row.ts';

async function setLifecycle(d: WorkspaceDeps, ws: Workspace, patch: { mode?: 'permanent' | 'temporary'; config?: Record<string, unknown>; ttlExpiresAt?: string | null }): Promise<Workspace> {
  const set: Partial<WorkspaceTable> = { updated_at: now() };
  if (patch.mode) set.mode = patch.mode;
  if (patch.config) set.config = JSON.stringify(mergeConfig(ws.config, patch.config, d.opts.bounds));
  if (patch.ttlExpiresAt !== undefined) set.ttl_expires_at = patch.ttlExpiresAt;
  await d.db.updateTable('workspaces').set(set).where('id', '=', ws.id).execute();
  return current(d, ws.id);
}

function expiry(seconds: number | null): string | null {
  return seconds ? new Date(Date.now() + seconds * 1000).toISOString() : null;
}

export async function makePermanent(d: WorkspaceDeps, p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> {
  const found = await find(d, p, idOrSlug);
  return d.locks.run(found.id, async () => {
    const ws = await current(d, found.id);
    const config: Record<string, unknown> = { ttl: null, remove_on_exit: false };
    if (body.restart_policy !== undefined) config.restart_policy = body.restart_policy;
    return setLifecycle(d, ws, { mode: 'permanent', config, ttlExpiresAt: null });
  });
}

export async function makeTemporary(d: WorkspaceDeps, p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> {
  const found = await find(d, p, idOrSlug);
  return d.locks.run(found.id, async () => {
    const ws = await current(d, found.id);
    const config: Record<string, unknown> = {};
    for (const k of ['ttl', 'ttl_action', 'remove_on_exit']) if (body[k] !== undefined) config[k] = body[k];
    const merged = mergeConfig(ws.config, config, d.opts.bounds);
    return setLifecycle(d, ws, { mode: 'temporary', config, ttlExpiresAt: expiry(merged.ttl_seconds) });
  });
}

/** Set, extend or clear (ttl: null) the TTL; the clock restarts now. */
export async function updateTtl(d: WorkspaceDeps, p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> {
  const found = await find(d, p, idOrSlug);
  return d.locks.run(found.id, async () => {
    const ws = await current(d, found.id);
    if (ws.mode === 'permanent' && body.ttl !== undefined && body.ttl !== null) {
      throw new StateConflict('a permanent workspace has no TTL', 'convert it first with lifecycle.makeTemporary');
    }
    const config: Record<string, unknown> = {};
    for (const k of ['ttl', 'ttl_action']) if (body[k] !== undefined) config[k] = body[k];
    const merged = mergeConfig(ws.config, config, d.opts.bounds);
    return setLifecycle(d, ws, { config, ttlExpiresAt: expiry(merged.ttl_seconds) });
  });
}

/** Keep-alive: renews the TTL clock (by ttl_seconds, or the workspace's own TTL) and the idle timer. */
export async function ping(d: WorkspaceDeps, p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> {
  const found = await find(d, p, idOrSlug);
  touch(d, found.id);
  const seconds = body.ttl_seconds !== undefined ? parseDuration(body.ttl_seconds) : found.config.ttl_seconds;
  if (found.mode === 'temporary' && seconds) {
    await d.db.updateTable('workspaces').set({ ttl_expires_at: expiry(seconds), updated_at: now() }).where('id', '=', found.id).execute();
  }
  return current(d, found.id);
}

/** Apply TTL actions to temporary workspaces whose time is up. Returns how many were handled. */
export async function reapExpired(d: WorkspaceDeps): Promise<number> {
  const due = await d.db.selectFrom('workspaces').select(['id', 'generation'])
    .where('ttl_expires_at', '<=', now())
    .where('state', 'in', ['running', 'paused', 'stopped', 'failed', 'sleeping'])
    .execute();
  let handled = 0;
  for (const { id, generation } of due) {
    try {
      const ws = await byId(d, id);
      // A late reaper must not act on a workspace recreated meanwhile.
      if (!ws || ws.generation !== generation || !ws.ttlExpiresAt || ws.ttlExpiresAt > now()) continue;
      const action = ws.config.remove_on_exit ? 'remove' : ws.config.ttl_action;
      d.log.info({ workspace: id, action }, 'ttl expired');
      if (action === 'remove') await remove(d, null, id, 'ttl');
      else {
        if (action === 'pause' && ws.state === 'running') await pause(d, adminPrincipal, id);
        else if (ws.state !== 'stopped' && ws.state !== 'failed') await stop(d, null, id, 'ttl');
        await d.db.updateTable('workspaces').set({ ttl_expires_at: null }).where('id', '=', id).execute();
      }
      handled++;
    } catch (err) {
      d.log.error({ workspace: id, err }, 'ttl action failed');
    }
  }
  return handled;
}
