/**
 * What a create must pass before anything is stored: the caller's scope,
 * the initial workloads, the image, the slug, network reach; then, under
 * the one create lock, namespace admission, the host's caps and a free
 * network slot, and the row inserted as `provisioning`.
 */
import type { WorkspaceTable } from '../../store/db.ts';
import type { DriverName } from '../../host/drivers/driver.ts';
import { slugFromName, validateSlug, type CreateRequest } from '../../core/workspace-spec.ts';
import { AlreadyExists, LimitReached, ValidationFailed } from '../../core/errors.ts';
import type { Principal } from '../../auth/principal.ts';
import { randomId, randomToken } from '../../auth/secrets.ts';
import { validateInitialWorkloads } from '../workloads.ts';
import { exclusive, type WorkspaceDeps } from './deps.ts';
import { pickFreeSlot } from '../../core/network-policy.ts';
import { checkLists, checkReach, NETWORK_LOCK } from './network.ts';
import { checkOutboundAllotment } from './host-facts.ts';
import { isSnapshotImage, SNAPSHOT_IMAGE_PREFIX } from '../../host/snapshots/store.ts';
import { ImageNotFoundError } from '../../host/images/errors.ts';
import { snapshotVisible } from '../snapshots.ts';
import { resolveBuiltName } from '../image-builds.ts';
import { decodeWorkspace, now, type Provisioning, type Workspace } from './row.ts';
import { poolShape, type PoolShape } from '../../core/warm-pool.ts';

/** The snapshot `image` names is the caller's (the rule listing snapshots applies), else not found. */
async function checkSnapshotVisible(d: WorkspaceDeps, p: Principal, image: string): Promise<void> {
  const id = image.trim().slice(SNAPSHOT_IMAGE_PREFIX.length);
  if (!(await snapshotVisible(d.db, p, id))) {
    throw new ImageNotFoundError(image, `there is no snapshot ${id} on this host`, 'list snapshots with GET /workspace/:id/snapshots');
  }
}

/** Checks that need no lock; returns the slug asked for (or derived), the driver and the warm-pool shape (null: never pooled). */
export async function checkCreate(d: WorkspaceDeps, p: Principal, req: CreateRequest): Promise<{ slug: string | null; driver: DriverName; shape: PoolShape | null }> {
  if (p.workspaceId) throw new ValidationFailed('scope', 'a workspace-scoped token cannot create workspaces');
  validateInitialWorkloads(req.config);
  // A snapshot is the caller's data: only one it may see is an image for it.
  // Someone else's answers exactly as a snapshot that does not exist.
  if (isSnapshotImage(req.image)) await checkSnapshotVisible(d, p, req.image);
  // A built image's short name becomes its ref; another namespace's built image is not found (image-builds.ts).
  req.image = await resolveBuiltName(d.host, p, req.namespace ?? p.namespace, req.image);
  // Resolving the image first means a bad name creates nothing at all.
  const image = await d.host.resolveImage(req.image);
  const slug = req.slug ?? (req.name ? slugFromName(req.name) : null);
  if (req.slug) validateSlug(req.slug);
  const driver = req.driver ?? d.host.defaultDriver;
  await checkReach(d, p, req.config.ingress, req.config.egress);
  await checkOutboundAllotment(d, req.config.outbound_ip, { owner: p.clientId, namespace: req.namespace ?? p.namespace });
  return { slug, driver, shape: poolShape(driver, req.image, image.digest || image.id, req.config) };
}

/** Serializes every create: in this process, and on a shared store across every hearthd on it. */
export const CREATE_LOCK = '__slots__';

/**
 * Admit and insert. One lock for every create: counting and inserting cannot
 * interleave, so no two creates can both pass a namespace limit of one, nor
 * take one slot or one idempotency key, whichever hearthd on the store they
 * reach (deps.ts `exclusive`). `fresh` is false when a create with the same
 * idempotency key won the race: that workspace is the answer.
 */
export function reserve(d: WorkspaceDeps, p: Principal, req: CreateRequest, namespace: string | null, slug: string | null, driver: DriverName, shape: PoolShape | null = null): Promise<{ ws: Workspace; fresh: boolean }> {
  return exclusive(d, CREATE_LOCK, async () => {
    if (req.idempotencyKey) {
      const prior = await d.db.selectFrom('workspaces').selectAll()
        .where('owner', '=', p.clientId).where('idempotency_key', '=', req.idempotencyKey).executeTakeFirst();
      if (prior && prior.state !== 'deleted') return { ws: decodeWorkspace(prior), fresh: false };
    }
    const nsSlug = d.admission ? await d.admission.admitCreate(p, namespace, req.config) : namespace;
    // Names in network lists are checked, and the slot chosen, under the network lock with the insert (network.ts).
    return { ws: await exclusive(d, NETWORK_LOCK, () => insert(d, p, req, nsSlug, slug, driver, shape)), fresh: true };
  });
}

/**
 * A slot for a pooled sandbox, under the same locks as a create, held by
 * `hold` before they are released. Null when the host has none to spare:
 * pooled sandboxes count toward host capacity, and the last slots are the creates'.
 */
export function reservePoolSlot(d: WorkspaceDeps, hold: (slot: number) => Promise<void>): Promise<number | null> {
  return exclusive(d, CREATE_LOCK, () => exclusive(d, NETWORK_LOCK, async () => {
    const rows = await d.db.selectFrom('workspaces').select(['slot_index', 'config']).execute();
    const used = new Set([...rows.filter((r) => r.slot_index !== null).map((r) => r.slot_index!), ...(d.pool?.slots() ?? [])]);
    if (used.size + 1 >= Math.min(d.opts.maxWorkspaces, d.host.slotCapacity)) return null;
    let slot: number;
    try {
      slot = pickSlot(d, used, rows.map((r) => JSON.parse(r.config) as { ingress?: unknown; egress?: unknown }));
    } catch {
      return null;
    }
    await hold(slot);
    return slot;
  }));
}

/** Under the create lock and NETWORK_LOCK: names checked, a slot chosen, the row inserted as provisioning. */
async function insert(d: WorkspaceDeps, p: Principal, req: CreateRequest, nsSlug: string | null, slug: string | null, driver: DriverName, shape: PoolShape | null): Promise<Workspace> {
  await checkLists(d, p, req.config.ingress, req.config.egress);
  const rows = await d.db.selectFrom('workspaces').select(['slot_index', 'config']).execute();
  const live = rows.filter((r) => r.slot_index !== null);
  if (live.length >= d.opts.maxWorkspaces) {
    throw new LimitReached('sandbox', `this host runs at most ${d.opts.maxWorkspaces} workspaces`, live.length, d.opts.maxWorkspaces);
  }
  const at = now();
  let finalSlug = slug;
  if (finalSlug) {
    const taken = await d.db.selectFrom('workspaces').select('id').where('slug', '=', finalSlug).executeTakeFirst();
    if (taken) {
      if (req.slug) throw new AlreadyExists('workspace slug', finalSlug);
      finalSlug = null; // auto-derived slug collides: fall back to none rather than fail
    }
  }
  // A pooled sandbox of this shape brings its id and slot (warm-pool/pool.ts); else a free slot, not one a pool holds.
  const pooled = shape ? d.pool?.take(shape) ?? null : null;
  const slotIndex = pooled ? pooled.slotIndex : pickSlot(d, new Set([...live.map((r) => r.slot_index!), ...(d.pool?.slots() ?? [])]), rows.map((r) => JSON.parse(r.config) as { ingress?: unknown; egress?: unknown }));
  const id = pooled ? pooled.id : randomId('ws_');
  const provisioning: Provisioning = {
    state: 'running', phase: 'preparing', message: 'preparing the workspace', error: null,
    created_at: at, updated_at: at, completed_at: null,
  };
  const row: WorkspaceTable = {
    id, slug: finalSlug, name: req.name ?? finalSlug ?? id, owner: p.clientId, namespace: nsSlug,
    image: req.image, mode: req.mode, state: 'provisioning', driver, slot_index: slotIndex, generation: 1,
    agent_secret: randomToken(32), runtime_enabled: 0, runtime_token_gen: 0,
    config: JSON.stringify(req.config), provisioning: JSON.stringify(provisioning),
    ttl_expires_at: req.config.ttl_seconds ? new Date(Date.now() + req.config.ttl_seconds * 1000).toISOString() : null,
    idempotency_key: req.idempotencyKey, user_requested_stop: 0, metered_at: null, metadata: null,
    state_changed_at: at, created_at: at, updated_at: at,
  };
  try {
    if (pooled) await d.pool!.markClaimed(pooled.id);
    await d.db.insertInto('workspaces').values(row).execute();
  } catch (err) {
    if (pooled) await d.pool!.unclaim(pooled.id);
    throw err;
  }
  return decodeWorkspace(row);
}

/** The lowest free slot that is not resting after a delete and whose address no network list names. */
function pickSlot(d: WorkspaceDeps, used: Set<number>, configs: { ingress?: unknown; egress?: unknown }[]): number {
  const t = Date.now();
  for (const [slot, until] of d.restingSlots) if (until <= t) d.restingSlots.delete(slot);
  const slot = pickFreeSlot(d.host.slotCapacity, (i) => used.has(i) || d.restingSlots.has(i), (i) => d.host.agentEndpoint({ slotIndex: i }).ip, configs.flatMap((c) => [c.ingress, c.egress]));
  if (slot === null) throw new LimitReached('sandbox', 'no free network slot on this host', used.size, d.host.slotCapacity);
  return slot;
}
