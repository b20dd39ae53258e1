/**
 * Warm pools: pre-started sandboxes per (image, driver, resource shape)
 * key, handed out once by a create and never recycled.
 *
 * A pooled sandbox is a workspace that does not exist yet: it is started
 * under a fresh workspace id on a reserved network slot, with the key's
 * limits, a neutral air-gapped config and a pool secret, and its agent
 * answers before it is `ready`. A create whose key has a ready sandbox
 * takes it (take), inserts its workspace row with that id and slot, and
 * provisioning applies the workspace's identity (HostDriver.claim) instead
 * of starting a sandbox. Nothing of anyone was ever in it: the id and the
 * slot were never a workspace's, and the pool's secret dies at the claim.
 *
 * Rows in `warm_pool` (migration 0006) make it survive a kill -9: reconcile
 * adopts ready sandboxes that still run and removes everything else. A
 * graceful close removes every pooled sandbox. Pooled sandboxes hold slots
 * (host capacity) but are no tenant's, so no quota or meter sees them.
 *
 * Refill runs in the background, one sandbox at a time, and only while no
 * create is provisioning, so on two cores it never competes with a create.
 */
import type { Logger } from 'pino';
import type { Db } from '../../store/db.ts';
import type { HostDriver, SandboxRef } from '../../host/host-driver.ts';
import { randomId, randomToken } from '../../auth/secrets.ts';
import { DemandTracker, nextToFill, poolKey, pooledConfig, surplus, type PoolShape } from '../../core/warm-pool.ts';

export type PooledState = 'filling' | 'ready' | 'claimed';

export interface PooledSandbox {
  id: string;
  key: string;
  shape: PoolShape;
  slotIndex: number;
  /** The agent secret until the claim. */
  secret: string;
  state: PooledState;
}

export interface WarmPoolDeps {
  db: Db;
  host: HostDriver;
  log: Logger;
  /** The operator's cap (`--warm-pool N`): at most N pooled sandboxes in all; 0 = off. */
  cap: number;
  /**
   * Pick a free slot and run `hold(slot)` under the create locks, so no
   * create can take the slot in between; null when the host has no slot to
   * spare (capacity first: creates always win).
   */
  reserveSlot(hold: (slot: number) => Promise<void>): Promise<number | null>;
  /** Whether a create is provisioning right now (refill waits: it must not slow one). */
  busy(): boolean;
  /** The workspace's state when a workspace row of this id exists (reconcile of a claim hearthd died in). */
  workspaceState(id: string): Promise<string | null>;
}

/** After a failed fill, the key is left alone this long (a broken image must not spin). */
const FILL_BACKOFF_MS = 30_000;
/** How often demand is re-read without creates (a key gone quiet gives its sandboxes back). */
const TICK_MS = 30_000;

export class WarmPool {
  private readonly entries = new Map<string, PooledSandbox>();
  private readonly demand = new DemandTracker();
  private readonly shapes = new Map<string, PoolShape>();
  private readonly backoff = new Map<string, number>();
  private loop: Promise<void> | null = null;
  private closed = false;
  private readonly tick: NodeJS.Timeout;

  constructor(private readonly d: WarmPoolDeps) {
    this.tick = setInterval(() => this.kick(), TICK_MS);
    this.tick.unref();
  }

  get enabled(): boolean {
    return this.d.cap > 0 && !!this.d.host.prestart && !!this.d.host.claim && !this.closed;
  }

  /** Slots held by pooled sandboxes (a create must not pick them). */
  slots(): Set<number> {
    return new Set([...this.entries.values()].map((e) => e.slotIndex));
  }

  /** Ids of pooled sandboxes (reconcile's sweep must not take them for orphans). */
  ids(): Set<string> {
    return new Set(this.entries.keys());
  }

  /** The pooled sandboxes' refs, for the firewall's sync (each keeps its air-gapped policy). */
  refs(): SandboxRef[] {
    return [...this.entries.values()].filter((e) => e.state !== 'claimed').map(refOf);
  }

  /** What the pool holds, per state (hearth doctor, tests). */
  summary(): { ready: number; filling: number; claimed: number; cap: number } {
    const n = (s: PooledState) => [...this.entries.values()].filter((e) => e.state === s).length;
    return { ready: n('ready'), filling: n('filling'), claimed: n('claimed'), cap: this.d.cap };
  }

  /** A create of this shape happened: demand for its key, and a refill soon. */
  note(shape: PoolShape): void {
    if (!this.enabled) return;
    const key = poolKey(shape);
    this.shapes.set(key, shape);
    this.demand.record(key, Date.now());
    this.kick();
  }

  /**
   * Take a ready sandbox of the key for a create, or null. Called under the
   * create locks; the caller persists the claim (markClaimed) before the
   * workspace row, so a crash in between leaves a claimed row reconcile removes.
   */
  take(shape: PoolShape): PooledSandbox | null {
    if (!this.enabled) return null;
    const key = poolKey(shape);
    const e = [...this.entries.values()].find((x) => x.key === key && x.state === 'ready');
    if (!e) return null;
    e.state = 'claimed';
    return e;
  }

  async markClaimed(id: string): Promise<void> {
    await this.d.db.updateTable('warm_pool').set({ state: 'claimed' }).where('id', '=', id).execute();
  }

  /** The create that took it failed before its workspace row existed: it is ready again. */
  async unclaim(id: string): Promise<void> {
    const e = this.entries.get(id);
    if (!e) return;
    await this.d.db.updateTable('warm_pool').set({ state: 'ready' }).where('id', '=', id).execute();
    e.state = 'ready';
  }

  /** The claimed pooled sandbox a provisioning workspace is to become, if any. */
  claimOf(workspaceId: string): PooledSandbox | null {
    const e = this.entries.get(workspaceId);
    return e?.state === 'claimed' ? e : null;
  }

  /** The claim is over (done, or fallen back to a cold start): the sandbox is the workspace's now. */
  async release(workspaceId: string): Promise<void> {
    this.entries.delete(workspaceId);
    await this.d.db.deleteFrom('warm_pool').where('id', '=', workspaceId).execute();
    this.kick();
  }

  /** Start the refill loop if it is not running. */
  kick(): void {
    if (!this.enabled || this.loop) return;
    this.loop = this.run().catch((err) => this.d.log.error({ err }, 'warm pool refill failed')).finally(() => { this.loop = null; });
  }

  /** Wait until the pool has nothing more to do (tests, bench). */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  private async run(): Promise<void> {
    while (this.enabled) {
      while (this.d.busy() && this.enabled) await sleep(25);
      if (!this.enabled) return;
      const now = Date.now();
      const keys = this.demand.keys(now);
      const held = (k: string) => [...this.entries.values()].filter((e) => e.key === k && e.state !== 'claimed').length;
      const target = (k: string) => ((this.backoff.get(k) ?? 0) > now ? 0 : this.demand.target(k, now, this.d.cap));
      // Demand fell: the surplus goes first, so the cap counts only what is wanted.
      const extra = surplus([...new Set([...this.entries.values()].map((e) => e.key))], held, (k) => this.demand.target(k, now, this.d.cap));
      if (extra.length) {
        const victim = [...this.entries.values()].find((e) => e.key === extra[0]!.key && e.state === 'ready');
        if (victim) {
          await this.discard(victim, 'demand fell');
          continue;
        }
      }
      const key = nextToFill(keys, held, target, this.d.cap);
      if (!key) return;
      await this.fill(key, this.shapes.get(key)!);
    }
  }

  /** Start one pooled sandbox of `key`: a slot and a row under the create locks, then the sandbox outside them. */
  private async fill(key: string, shape: PoolShape): Promise<void> {
    const entry: PooledSandbox = { id: randomId('ws_'), key, shape, slotIndex: -1, secret: randomToken(32), state: 'filling' };
    const slot = await this.d.reserveSlot(async (s) => {
      entry.slotIndex = s;
      await this.d.db.insertInto('warm_pool').values({
        id: entry.id, pool_key: key, shape: JSON.stringify(shape), slot_index: s, secret: entry.secret, state: 'filling', created_at: new Date().toISOString(),
      }).execute();
      this.entries.set(entry.id, entry);
    });
    if (slot === null) {
      this.backoff.set(key, Date.now() + FILL_BACKOFF_MS);
      return;
    }
    const t0 = Date.now();
    try {
      await this.d.host.prestart!(refOf(entry));
    } catch (err) {
      this.d.log.warn({ err, key }, 'a pooled sandbox failed to start: this key rests');
      this.backoff.set(key, Date.now() + FILL_BACKOFF_MS);
      await this.discard(entry, 'failed to start');
      return;
    }
    if (this.closed) return; // close() removes it
    entry.state = 'ready';
    await this.d.db.updateTable('warm_pool').set({ state: 'ready' }).where('id', '=', entry.id).execute();
    this.d.log.info({ pooled: entry.id, key, slot, ms: Date.now() - t0 }, 'pooled sandbox ready');
  }

  /** Remove a pooled sandbox and everything it holds on the host, then its row. */
  private async discard(e: PooledSandbox, why: string): Promise<void> {
    this.entries.delete(e.id);
    try {
      await this.d.host.destroy(refOf(e));
      await this.d.db.deleteFrom('warm_pool').where('id', '=', e.id).execute();
      this.d.log.info({ pooled: e.id, why }, 'pooled sandbox removed');
    } catch (err) {
      // Kept as a row: the next reconcile tries again.
      this.d.log.error({ err, pooled: e.id }, 'cannot remove a pooled sandbox');
    }
  }

  /**
   * After a restart: ready sandboxes that still run are adopted (and count
   * as demand, so they are not trimmed at once); a half-filled one is
   * removed; a claimed one whose workspace is still provisioning is stopped
   * (its workspace then starts cold on the same slot and disk), else only
   * its row goes (the claim had finished, or its workspace never was).
   */
  async reconcile(): Promise<{ adopted: number; removed: number }> {
    const out = { adopted: 0, removed: 0 };
    const rows = await this.d.db.selectFrom('warm_pool').selectAll().execute();
    for (const r of rows) {
      const e: PooledSandbox = { id: r.id, key: r.pool_key, shape: JSON.parse(r.shape) as PoolShape, slotIndex: r.slot_index, secret: r.secret, state: r.state as PooledState };
      try {
        if (e.state === 'claimed') {
          const ws = await this.d.workspaceState(e.id);
          if (ws === 'provisioning') await this.d.host.stop(refOf(e));
          else if (ws === null) await this.d.host.destroy(refOf(e));
          await this.d.db.deleteFrom('warm_pool').where('id', '=', e.id).execute();
          out.removed++;
          continue;
        }
        if (e.state === 'ready' && this.d.cap > 0 && (await this.d.host.state(refOf(e))) === 'running') {
          this.entries.set(e.id, e);
          this.shapes.set(e.key, e.shape);
          this.demand.record(e.key, Date.now());
          out.adopted++;
          continue;
        }
        await this.d.host.destroy(refOf(e));
        await this.d.db.deleteFrom('warm_pool').where('id', '=', e.id).execute();
        out.removed++;
      } catch (err) {
        this.d.log.error({ err, pooled: e.id }, 'reconcile of a pooled sandbox failed');
        this.entries.set(e.id, { ...e, state: 'claimed' }); // held (slot and dir kept from the sweep), never handed out
      }
    }
    return out;
  }

  /** Shutdown: refill stops, and every pooled sandbox not being claimed is removed with its row. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.tick);
    await this.idle();
    const left = [...this.entries.values()].filter((e) => e.state !== 'claimed');
    // Two at a time: a teardown is a handful of process spawns.
    for (let i = 0; i < left.length; i += 2) await Promise.all(left.slice(i, i + 2).map((e) => this.discard(e, 'hearthd stopping')));
  }
}

/** The host's view of a pooled sandbox: a workspace of the key's shape that nobody owns yet. */
export function refOf(e: Pick<PooledSandbox, 'id' | 'shape' | 'slotIndex' | 'secret'>): SandboxRef {
  return {
    id: e.id, driver: e.shape.driver, slotIndex: e.slotIndex, generation: 1, agentSecret: e.secret, image: e.shape.image,
    hostname: e.id.replace('_', '-').slice(0, 63), config: pooledConfig(e.shape),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
