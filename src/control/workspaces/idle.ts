/**
 * Activity and idle sleep (§6): edge traffic and pings are activity; a
 * running workspace with an idle policy and no activity for `suspend_after`
 * seconds goes to sleep, and after `stop_after` more seconds asleep it is
 * plainly stopped.
 */
import { parseIdle } from '../../core/workspace-spec.ts';
import type { Principal } from '../../auth/principal.ts';
import type { WorkspaceDeps } from './deps.ts';
import { find } from './queries.ts';
import { stop } from './power.ts';
import { current, decodeWorkspace, now, sandboxRef, transition, type Workspace } from './row.ts';

/** Record activity (edge HTTP traffic, ping): it postpones idle sleep. */
export function touch(d: WorkspaceDeps, id: string): void {
  d.activity.set(id, Date.now());
}

export function lastActivity(d: WorkspaceDeps, ws: Workspace): number {
  return d.activity.get(ws.id) ?? Math.max(Date.parse(ws.stateChangedAt), d.startedAt);
}

/** `{ suspend_after, stop_after }`; suspend_after 0 (or null policy) disables idle sleep. */
export async function setIdle(d: WorkspaceDeps, p: Principal, idOrSlug: string, body: Record<string, unknown>, minSuspendSeconds: number): Promise<Workspace> {
  const found = await find(d, p, idOrSlug);
  // The one idle parser: create and update bodies with config.idle go through it too.
  const idle = parseIdle(body, minSuspendSeconds);
  return d.locks.run(found.id, async () => {
    const ws = await current(d, found.id);
    await d.db.updateTable('workspaces').set({ config: JSON.stringify({ ...ws.config, idle }), updated_at: now() }).where('id', '=', ws.id).execute();
    touch(d, ws.id);
    return current(d, ws.id);
  });
}

/**
 * Idle sleep: the sandbox stops (memory is not kept for containers: CRIU
 * cannot run here), its files stay, and the next request through the
 * gateway or the edge wakes it. A sleeping workspace past `stop_after`
 * becomes stopped (no wake). Returns how many were handled.
 */
export async function sleepIdle(d: WorkspaceDeps): Promise<number> {
  const rows = await d.db.selectFrom('workspaces').selectAll().where('state', 'in', ['running', 'sleeping']).execute();
  let n = 0;
  for (const ws of rows.map(decodeWorkspace)) {
    const idle = ws.config.idle as { suspend_after: number; stop_after: number } | null | undefined;
    const quietFor = (Date.now() - lastActivity(d, ws)) / 1000;
    // auto_stop_seconds (update/create): a plain stop after that long without activity, no wake on traffic.
    const autoStop = typeof ws.config.auto_stop_seconds === 'number' ? ws.config.auto_stop_seconds : 0;
    if (ws.state === 'running' && autoStop > 0 && quietFor >= autoStop) {
      await stop(d, null, ws.id, 'idle');
      d.log.info({ workspace: ws.id, quiet_s: Math.round(quietFor) }, 'workspace stopped (auto_stop_seconds)');
      n++;
      continue;
    }
    if (!idle?.suspend_after) continue;
    if (ws.state === 'running' && quietFor >= idle.suspend_after) {
      await d.locks.run(ws.id, async () => {
        const cur = await current(d, ws.id);
        if (cur.state !== 'running') return;
        await d.host.stop(sandboxRef(cur));
        await transition(d, cur, 'sleeping', { provisioning: null });
        d.log.info({ workspace: ws.id, quiet_s: Math.round(quietFor) }, 'workspace went to sleep (idle)');
      });
      n++;
    } else if (ws.state === 'sleeping' && idle.stop_after && (Date.now() - Date.parse(ws.stateChangedAt)) / 1000 >= idle.stop_after) {
      await d.locks.run(ws.id, async () => {
        const cur = await current(d, ws.id);
        if (cur.state === 'sleeping') await transition(d, cur, 'stopped', { provisioning: null });
      });
      n++;
    }
  }
  return n;
}
