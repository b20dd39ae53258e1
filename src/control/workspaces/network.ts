/**
 * Network reach of a caller's ingress/egress lists, applying a changed
 * policy to a live sandbox, and the names those lists hold.
 *
 * Names, not addresses (isolation issue: a reused IP inherited trust across
 * tenants). On the workspace network an address is the name of the one
 * workspace holding that slot, and only while the workspace exists: a slot
 * never moves while its workspace lives, so an entry naming the address of
 * a live workspace always means that workspace. Three rules keep it so,
 * all under one lock (NETWORK_LOCK) so none can interleave with another:
 * - create/update refuse an address no live workspace holds, any range
 *   inside the workspace network (it would trust whoever lands in it
 *   later), and a workspace the caller may not see (another tenant's);
 * - delete removes the row and the workspace's address from every other
 *   workspace's lists in one transaction, then re-applies their policies;
 * - the slot allocator refuses a slot whose address any list still names.
 * The stored lists stay lists of IPs, so the API view (contract §7) is
 * unchanged and the host builds rules from them as before.
 */
import { checkNetworkReach } from '../../core/grants.ts';
import { classifyEntry, intToIp, ipToInt, parseCidr, withoutAddress, type WorkspaceRange } from '../../core/network-policy.ts';
import type { WorkspaceConfig } from '../../core/workspace-spec.ts';
import { Forbidden, ValidationFailed } from '../../core/errors.ts';
import type { Principal } from '../../auth/principal.ts';
import { exclusive, type WorkspaceDeps } from './deps.ts';
import { byId, now, sandboxRef, type Workspace } from './row.ts';

/**
 * Serializes everything that writes or checks names in network lists (create
 * insert and slot choice, config updates, the delete's strip) and applies
 * their policies in that order. Taken inside a workspace's lock or the
 * create lock, never around them.
 */
export const NETWORK_LOCK = '__network__';

/**
 * What an egress list emptied by a delete becomes: an address no rule ever
 * reaches (0.0.0.0/8 is denied first), because an empty list means
 * "anywhere" (or "other workspaces") and a delete must never widen egress.
 */
export const EGRESS_NOWHERE = '0.0.0.0';

/** The addresses of the host's slots (consecutive: slot i is first + i). */
export function workspaceRange(d: WorkspaceDeps): WorkspaceRange {
  return { first: ipToInt(d.host.agentEndpoint({ slotIndex: 0 }).ip), last: ipToInt(d.host.agentEndpoint({ slotIndex: d.host.slotCapacity - 1 }).ip) };
}

const ipOf = (d: WorkspaceDeps, slotIndex: number) => d.host.agentEndpoint({ slotIndex }).ip;

/** Tokens may wire ingress/egress only to workspaces and hosts they were granted. */
export async function checkReach(d: WorkspaceDeps, p: Principal, ingress: string[] | undefined, egress: string[] | undefined): Promise<void> {
  if (p.grants.reach === null && p.grants.egressHosts === null && p.namespace === null) return;
  if (!ingress?.length && !egress?.length) return;
  const rows = await d.db.selectFrom('workspaces').select(['id', 'slot_index']).where('slot_index', 'is not', null).execute();
  const internal = new Set(rows.map((r) => ipOf(d, r.slot_index!)));
  const reachable = await reachableIps(d, p, rows);
  checkNetworkReach(p.grants, { ingress, egress }, { isInternal: (e) => internal.has(e), ipsOfReachable: reachable, unrestricted: p.grants.reach === null && p.namespace === null });
}

/** Internal IPs of the workspaces `p` may wire to: its reach grant, else its namespace's (an account key without a reach list: all). */
async function reachableIps(d: WorkspaceDeps, p: Principal, rows: { id: string; slot_index: number | null }[]): Promise<Set<string>> {
  // Without an explicit reach list, a namespace-bound caller reaches its own namespace only.
  const inScope = p.namespace === null ? null
    : new Set((await d.db.selectFrom('workspaces').select('id').where('namespace', '=', p.namespace).execute()).map((r) => r.id));
  const allowed = p.grants.reach ?? (inScope ? [...inScope] : null);
  return new Set(rows.filter((r) => r.slot_index !== null && (allowed === null || allowed.includes(r.id))).map((r) => ipOf(d, r.slot_index!)));
}

/**
 * Every entry on the workspace network must name a live workspace the caller
 * may see, then the reach grants apply. Call under NETWORK_LOCK, with the
 * write that follows, so a delete cannot come between the check and the write.
 * A restricted caller gets the same refusal for "no workspace there" and
 * "another tenant's workspace", so the check tells it nothing about others.
 */
export async function checkLists(d: WorkspaceDeps, p: Principal, ingress: string[] | undefined, egress: string[] | undefined): Promise<void> {
  if (!ingress?.length && !egress?.length) return;
  const range = workspaceRange(d);
  const rows = await d.db.selectFrom('workspaces').select(['id', 'slot_index', 'state']).where('slot_index', 'is not', null).execute();
  const held = new Set(rows.filter((r) => r.state !== 'deleting' && r.state !== 'deleted').map((r) => ipOf(d, r.slot_index!)));
  const unrestricted = p.grants.reach === null && p.namespace === null;
  const reachable = unrestricted ? held : await reachableIps(d, p, rows);
  const net = `${intToIp(range.first)}–${intToIp(range.last)}`;
  for (const [field, entries] of [['ingress', ingress], ['egress', egress]] as const) {
    for (const e of entries ?? []) {
      const kind = classifyEntry(e, range);
      if (kind === 'workspace-range') {
        throw new ValidationFailed(field, `${field} entry ${e} is a range inside the workspace network (${net}): name workspaces by their internal_ip`, 'a range would also trust whichever workspace gets an address in it later');
      }
      if (kind !== 'workspace-address') continue;
      const ip = intToIp(parseCidr(e).base);
      if (!unrestricted && !(held.has(ip) && reachable.has(ip))) {
        throw new Forbidden(`this token may not wire ${field} to ${e}: it is not the address of a workspace it may reach`);
      }
      if (!held.has(ip)) {
        throw new ValidationFailed(field, `${field} entry ${e} is not the address of a workspace: an address on the workspace network (${net}) names the workspace holding it, and only while that workspace exists`);
      }
    }
  }
  await checkReach(d, p, ingress, egress);
}

const NETWORK_KEYS = ['allow_internet', 'ingress', 'egress', 'outbound_ip'];

export function networkChanged(before: WorkspaceConfig, after: WorkspaceConfig): boolean {
  return NETWORK_KEYS.some((k) => JSON.stringify(after[k]) !== JSON.stringify(before[k]));
}

/** A live sandbox gets a changed network policy at once; a stopped one gets it at its next start. */
export async function applyIfChanged(d: WorkspaceDeps, before: WorkspaceConfig, after: WorkspaceConfig, updated: Workspace): Promise<void> {
  if (networkChanged(before, after) && (updated.state === 'running' || updated.state === 'paused')) await d.host.applyNetwork(sandboxRef(updated));
}

/**
 * A started sandbox got the policy of the row it was started from; if a
 * delete removed a name from its lists meanwhile, the store's lists win.
 */
export async function reapplyIfStale(d: WorkspaceDeps, startedWith: WorkspaceConfig, id: string): Promise<void> {
  await exclusive(d, NETWORK_LOCK, async () => {
    const latest = await byId(d, id);
    if (!latest || latest.slotIndex === null || latest.state === 'deleting' || !networkChanged(startedWith, latest.config)) return;
    await d.host.applyNetwork(sandboxRef(latest)).catch((err) => d.log.warn({ workspace: id, err }, 'cannot re-apply the network policy after start'));
  });
}

/** `config` without any entry naming `ip`, or null when it names none (an emptied egress list becomes EGRESS_NOWHERE). */
export function configWithout(config: WorkspaceConfig, ip: string): WorkspaceConfig | null {
  const ingress = withoutAddress(config.ingress, ip);
  const egress = withoutAddress(config.egress, ip);
  if (!ingress && !egress) return null;
  const out = { ...config };
  if (ingress) out.ingress = ingress;
  if (egress) out.egress = egress.length ? egress : [EGRESS_NOWHERE];
  return out;
}

/**
 * Delete the workspace's row and, in the same transaction, every other
 * workspace's names of its address; then their policies are applied from
 * the store (stopped ones too: a policy lives as long as its workspace).
 */
export async function deleteRowAndNames(d: WorkspaceDeps, ws: Workspace): Promise<void> {
  await exclusive(d, NETWORK_LOCK, async () => {
    const ip = ws.slotIndex === null ? null : ipOf(d, ws.slotIndex);
    const affected = await d.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('workspaces').where('id', '=', ws.id).execute();
      if (ip === null) return [];
      const changed: string[] = [];
      for (const r of await trx.selectFrom('workspaces').select(['id', 'config']).execute()) {
        const next = configWithout(JSON.parse(r.config) as WorkspaceConfig, ip);
        if (!next) continue;
        await trx.updateTable('workspaces').set({ config: JSON.stringify(next), updated_at: now() }).where('id', '=', r.id).execute();
        changed.push(r.id);
      }
      return changed;
    });
    if (affected.length) d.log.info({ workspace: ws.id, ip, affected }, 'removed the deleted workspace\'s address from other workspaces\' network lists');
    await applyAll(d, affected);
  });
}

async function applyAll(d: WorkspaceDeps, ids: string[]): Promise<void> {
  for (const id of ids) {
    const w = await byId(d, id);
    if (!w || w.slotIndex === null || w.state === 'deleting') continue;
    await d.host.applyNetwork(sandboxRef(w)).catch((err) => d.log.warn({ workspace: id, err }, 'cannot re-apply the network policy'));
  }
}

/**
 * Boot: names of addresses no live workspace holds (a store from before
 * names were kept, a crash between steps) are removed, so the allocator
 * does not keep their slots forever and nothing trusts their next holder.
 */
export async function forgetDanglingNames(d: WorkspaceDeps): Promise<number> {
  return exclusive(d, NETWORK_LOCK, async () => {
    const range = workspaceRange(d);
    const rows = await d.db.selectFrom('workspaces').select(['id', 'slot_index', 'state', 'config']).execute();
    const held = new Set(rows.filter((r) => r.slot_index !== null && r.state !== 'deleting' && r.state !== 'deleted').map((r) => ipOf(d, r.slot_index!)));
    const changed: string[] = [];
    for (const r of rows) {
      let cfg = JSON.parse(r.config) as WorkspaceConfig;
      let dirty = false;
      for (const e of [...(Array.isArray(cfg.ingress) ? cfg.ingress : []), ...(Array.isArray(cfg.egress) ? cfg.egress : [])]) {
        if (typeof e !== 'string' || classifyEntry(e, range) !== 'workspace-address') continue;
        const ip = intToIp(parseCidr(e).base);
        if (held.has(ip)) continue;
        cfg = configWithout(cfg, ip) ?? cfg;
        dirty = true;
      }
      if (!dirty) continue;
      await d.db.updateTable('workspaces').set({ config: JSON.stringify(cfg), updated_at: now() }).where('id', '=', r.id).execute();
      changed.push(r.id);
    }
    if (changed.length) d.log.warn({ workspaces: changed }, 'removed network-list entries naming addresses no workspace holds');
    return changed.length;
  });
}
