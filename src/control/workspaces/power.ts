/** Power: start, stop, restart, pause, resume, wake from idle sleep, and the stops the namespace service orders. */
import type { StopReason } from '../../core/lifecycle.ts';
import { NotFound, StateConflict } from '../../core/errors.ts';
import type { Principal } from '../../auth/principal.ts';
import type { WorkspaceDeps } from './deps.ts';
import { find } from './queries.ts';
import { awaitFastPath, remove, startProvisioning } from './lifecycle.ts';
import { touch } from './idle.ts';
import { byId, current, freshProvisioning, now, sandboxRef, transition, type Workspace } from './row.ts';

export async function start(d: WorkspaceDeps, p: Principal, idOrSlug: string): Promise<Workspace> {
  const found = await find(d, p, idOrSlug);
  await d.locks.run(found.id, async () => {
    const ws = await current(d, found.id);
    if (ws.state === 'running' || ws.state === 'provisioning') return;
    await d.admission?.admitStart(ws.namespace);
    if (ws.state === 'paused') {
      await d.host.resume(sandboxRef(ws));
      await transition(d, ws, 'running');
      return;
    }
    await transition(d, ws, 'provisioning', {
      generation: ws.generation + 1, userRequestedStop: false,
      provisioning: { ...freshProvisioning(now()), message: 'starting' },
    });
  });
  const ws = await current(d, found.id);
  if (ws.state === 'provisioning' && !d.inflight.has(ws.id)) startProvisioning(d, ws);
  return awaitFastPath(d, ws);
}

export async function stop(d: WorkspaceDeps, p: Principal | null, idOrSlug: string, reason: StopReason = 'request'): Promise<Workspace | null> {
  const found = p ? await find(d, p, idOrSlug) : await byId(d, idOrSlug);
  if (!found) throw new NotFound('workspace', idOrSlug);
  if (found.config.remove_on_exit && reason !== 'reconcile') {
    await remove(d, p, found.id, 'remove_on_exit');
    return null;
  }
  return d.locks.run(found.id, async () => {
    const ws = await current(d, found.id);
    if (ws.state === 'stopped') return ws;
    if (ws.state === 'deleting' || ws.state === 'deleted') throw new NotFound('workspace', idOrSlug);
    if (ws.state === 'failed' || ws.state === 'provisioning') {
      await d.host.stop(sandboxRef(ws));
      if (ws.state === 'provisioning') return transition(d, ws, 'failed', { provisioning: { state: 'failed', phase: 'failed', message: 'stopped during provisioning', error: { code: 'CREATE_FAILED', message: 'stopped during provisioning' } } });
      return ws;
    }
    // The intent is saved before the host acts: should hearthd die between the
    // two, reconcile finishes the stop instead of restarting what was asked to stop.
    if (reason === 'request') await markStopRequested(d, ws.id);
    await d.host.stop(sandboxRef(ws));
    d.log.info({ workspace: ws.id, reason }, 'workspace stopped');
    return transition(d, ws, 'stopped', { userRequestedStop: reason === 'request', provisioning: null });
  });
}

export async function restart(d: WorkspaceDeps, p: Principal, idOrSlug: string): Promise<Workspace> {
  const ws = await find(d, p, idOrSlug);
  await d.locks.run(ws.id, async () => {
    const cur = await current(d, ws.id);
    if (cur.state === 'running' || cur.state === 'paused') {
      await d.host.stop(sandboxRef(cur));
      await transition(d, cur, 'stopped', { userRequestedStop: false, provisioning: null });
    }
  });
  return start(d, p, ws.id);
}

export async function pause(d: WorkspaceDeps, p: Principal, idOrSlug: string): Promise<Workspace> {
  const found = await find(d, p, idOrSlug);
  return d.locks.run(found.id, async () => {
    const ws = await current(d, found.id);
    if (ws.state === 'paused') return ws;
    if (ws.state !== 'running') throw new StateConflict(`workspace is ${ws.state}; only a running workspace can be paused`, 'start it first');
    await d.host.pause(sandboxRef(ws));
    return transition(d, ws, 'paused');
  });
}

export async function resume(d: WorkspaceDeps, p: Principal, idOrSlug: string): Promise<Workspace> {
  const found = await find(d, p, idOrSlug);
  return d.locks.run(found.id, async () => {
    const ws = await current(d, found.id);
    if (ws.state === 'running') return ws;
    if (ws.state !== 'paused') throw new StateConflict(`workspace is ${ws.state}; only a paused workspace can be resumed`, 'use start for a stopped workspace');
    await d.admission?.admitStart(ws.namespace);
    await d.host.resume(sandboxRef(ws));
    return transition(d, ws, 'running');
  });
}

/**
 * Wake a sleeping workspace and wait until it serves (gateway and edge call
 * this on a request). Returns the workspace as it is afterwards.
 */
export async function wake(d: WorkspaceDeps, id: string): Promise<Workspace | null> {
  const ws = await byId(d, id);
  if (!ws || ws.state !== 'sleeping') return ws;
  await d.locks.run(id, async () => {
    const cur = await current(d, id);
    if (cur.state !== 'sleeping') return;
    await d.admission?.admitStart(cur.namespace);
    await transition(d, cur, 'provisioning', { generation: cur.generation + 1, provisioning: { ...freshProvisioning(now()), message: 'waking' } });
  });
  touch(d, id);
  const woken = await current(d, id);
  if (woken.state === 'provisioning' && !d.inflight.has(id)) startProvisioning(d, woken);
  await d.inflight.get(id)?.catch(() => undefined);
  d.log.info({ workspace: id }, 'workspace woke up');
  return byId(d, id);
}

/** Stopped by the namespace service (suspension, quota): never deleted, whatever remove_on_exit says, so the namespace's data stays. */
export async function stopSystem(d: WorkspaceDeps, id: string, reason: 'namespace' | 'quota'): Promise<void> {
  await d.locks.run(id, async () => {
    const ws = await byId(d, id);
    if (!ws || ws.state === 'stopped' || ws.state === 'failed' || ws.state === 'deleting') return;
    await d.host.stop(sandboxRef(ws));
    if (ws.state === 'provisioning') {
      await transition(d, ws, 'failed', { provisioning: { state: 'failed', phase: 'failed', message: `stopped (${reason})`, error: { code: 'CREATE_FAILED', message: `stopped by the namespace's ${reason === 'quota' ? 'quota policy' : 'suspension'}` } } });
    } else {
      await transition(d, ws, 'stopped', { provisioning: null, userRequestedStop: false });
    }
    d.log.info({ workspace: id, reason }, 'workspace stopped');
  });
}

/** Record that a stop was asked for, before acting on it (reconcile reads it after a crash). */
async function markStopRequested(d: WorkspaceDeps, id: string): Promise<void> {
  await d.db.updateTable('workspaces').set({ user_requested_stop: 1, updated_at: now() }).where('id', '=', id).execute();
}
