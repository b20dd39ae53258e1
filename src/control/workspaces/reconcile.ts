/**
 * Startup reconcile (E2B's startupreclaim): compare the store with the
 * host. Interrupted creations and deletions are finished, workspaces that
 * should run but died are started again, sandboxes of this host that the
 * store does not know are removed.
 */
import type { WorkspaceDeps } from './deps.ts';
import { remove, startProvisioning } from './lifecycle.ts';
import { forgetDanglingNames } from './network.ts';
import { current, decodeWorkspace, freshProvisioning, now, sandboxRef, transition } from './row.ts';

/** Returns a per-action summary. */
export async function reconcile(d: WorkspaceDeps): Promise<Record<string, number>> {
  const summary: Record<string, number> = { adopted: 0, restarted: 0, stopped: 0, deleted: 0, orphans_removed: 0, failed: 0 };
  const rows = (await d.db.selectFrom('workspaces').selectAll().execute()).map(decodeWorkspace);
  // Pooled sandboxes first: adopted ones are known to the sweep below, and a claim hearthd died in is undone before its workspace starts.
  if (d.pool) Object.assign(summary, prefixed('pool_', await d.pool.reconcile()));
  const known = new Set([...rows.map((r) => r.id), ...(d.pool?.ids() ?? [])]);
  // One listing of the host's sandboxes: where it carries states, no per-workspace probe is needed.
  const listing = await d.host.listSandboxes().catch((err) => {
    d.log.warn({ err }, 'cannot list the host sandboxes: probing each workspace');
    return null;
  });
  const listedState = new Map((listing ?? []).filter((s) => s.state).map((s) => [s.id, s.state!]));
  // Host probes cost a process spawn each: check several workspaces at once.
  await eachLimited(rows, 8, async (ws) => {
    try {
      if (ws.state === 'deleting' || ws.state === 'deleted') {
        await remove(d, null, ws.id, 'reconcile');
        summary.deleted!++;
      } else if (ws.state === 'provisioning') {
        startProvisioning(d, ws);
        summary.restarted!++;
      } else if (ws.state === 'running' && ws.userRequestedStop) {
        // A stop was asked for and saved, and hearthd died before it was recorded as done: finish it.
        await d.host.stop(sandboxRef(ws)).catch(() => undefined);
        await transition(d, ws, 'stopped', { provisioning: null, userRequestedStop: true });
        summary.stopped!++;
      } else if (ws.state === 'running' || ws.state === 'paused') {
        const onHost = listedState.get(ws.id) ?? await d.host.state(sandboxRef(ws));
        if (onHost === 'running' || onHost === 'paused') {
          // Pause and resume act on the host first: if hearthd died in between, the host is the truth.
          if (onHost !== ws.state) await transition(d, ws, onHost);
          summary.adopted!++;
          return;
        }
        d.log.warn({ workspace: ws.id, host_state: onHost }, 'workspace died while hearthd was away: starting it again');
        await d.host.stop(sandboxRef(ws)).catch(() => undefined);
        const restarted = await transition(d, ws, 'stopped', { provisioning: null });
        await transition(d, restarted, 'provisioning', { generation: ws.generation + 1, provisioning: { ...freshProvisioning(now()), message: 'restarting after host restart' } });
        startProvisioning(d, await current(d, ws.id));
        summary.restarted!++;
      }
    } catch (err) {
      summary.failed!++;
      d.log.error({ workspace: ws.id, err }, 'reconcile failed for workspace');
    }
  });
  // Names of addresses no workspace holds (a store from before names were kept): removed before policies load.
  summary.names_forgotten = await forgetDanglingNames(d).catch((err) => {
    d.log.error({ err }, 'cannot check the names in network lists');
    return 0;
  });
  // What this instance provably owns but the store does not know (a store restored from a backup,
  // a crash between steps): removed. The host decides what is provably its own (its runc root,
  // run dir, data dir and bridge); anything else is never touched.
  const slots = new Set([...rows.filter((r) => r.slotIndex !== null).map((r) => r.slotIndex!), ...(d.pool?.slots() ?? [])]);
  const sweep = await d.host.removeOrphans({ ids: known, slots }, listing?.map((s) => s.id)).catch((err) => {
    d.log.error({ err }, 'orphan sweep failed');
    return null;
  });
  if (sweep) {
    summary.orphans_removed = sweep.sandboxes.length + sweep.dirs.length + sweep.slots.length;
    summary.failed! += sweep.failed.length;
    if (summary.orphans_removed || sweep.failed.length) d.log.warn({ ...sweep }, 'removed what the store does not know');
  }
  return summary;
}

function prefixed(prefix: string, counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [prefix + k, v]));
}

/** Run `fn` over `items` with at most `limit` in flight. */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => { while (next < items.length) await fn(items[next++]!); };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
