/**
 * The workspace service: every control-plane operation on workspaces, in
 * domain terms. Each state change is persisted before it is acted on, so a
 * restarted hearthd can reconcile; operations on one workspace are
 * serialized; the host is reached only through the HostDriver.
 *
 * This class is a facade: each concern lives in its own module of this
 * folder, as functions over one shared WorkspaceDeps (deps.ts), with the
 * row and its state transitions in row.ts.
 */
import type { Logger } from 'pino';
import type { Db } from '../../store/db.ts';
import type { HostDriver } from '../../host/host-driver.ts';
import type { StopReason } from '../../core/lifecycle.ts';
import type { CreateRequest } from '../../core/workspace-spec.ts';
import type { Principal } from '../../auth/principal.ts';
import type { NamespaceWorkspaces } from '../namespace-workspaces.ts';
import { DEFAULT_SERVICE_OPTIONS, workspaceDeps, type WorkspaceDeps, type WorkspaceLinks, type WorkspaceServiceOptions } from './deps.ts';
import { byId, type Workspace } from './row.ts';
import * as queries from './queries.ts';
import * as lifecycle from './lifecycle.ts';
import * as power from './power.ts';
import * as idle from './idle.ts';
import * as ttl from './ttl.ts';
import { update } from './update.ts';
import * as access from './access.ts';
import * as meta from './metadata.ts';
import { reconcile } from './reconcile.ts';
import * as facts from './host-facts.ts';
import type { AgentEndpoint } from '../../core/agent-protocol.ts';
import * as resources from '../resources.ts';
import type { SandboxRef } from '../../host/host-driver.ts';
import { WarmPool } from '../warm-pool/pool.ts';
import { reservePoolSlot } from './admission.ts';

export { DEFAULT_SERVICE_OPTIONS, adminPrincipal, type Admission, type UsageMeter, type WorkspaceLinks, type WorkspaceServiceOptions } from './deps.ts';
export type { Provisioning, Workspace } from './row.ts';
export type { ImageCatalogEntry, SandboxStats } from './host-facts.ts';

export class WorkspaceService implements NamespaceWorkspaces {
  private readonly d: WorkspaceDeps;

  constructor(db: Db, host: HostDriver, log: Logger, opts: WorkspaceServiceOptions = DEFAULT_SERVICE_OPTIONS, links: WorkspaceLinks = {}) {
    this.d = workspaceDeps(db, host, log, opts, links);
    const cap = opts.warmPool ?? 0;
    if (cap > 0 && host.prestart && host.claim) {
      this.d.pool = new WarmPool({
        db, host, log: log.child({ component: 'warm-pool' }), cap,
        reserveSlot: (hold) => reservePoolSlot(this.d, hold),
        busy: () => this.d.inflight.size > 0,
        workspaceState: async (id) => (await byId(this.d, id))?.state ?? null,
      });
    }
  }

  // queries
  find(p: Principal, idOrSlug: string): Promise<Workspace> { return queries.find(this.d, p, idOrSlug); }
  /** Internal lookup by id (no principal): gateway, reaper. */
  byId(id: string): Promise<Workspace | null> { return byId(this.d, id); }
  list(p: Principal, q: queries.ListQuery): Promise<{ workspaces: Workspace[]; total: number }> { return queries.list(this.d, p, q); }
  counts(p: Principal): Promise<queries.Counts> { return queries.counts(this.d, p); }

  // create, provisioning, delete
  create(p: Principal, req: CreateRequest): Promise<Workspace> { return lifecycle.create(this.d, p, req); }
  /** Wait for an in-flight provisioning (tests, CLI). */
  settled(id: string): Promise<void> { return lifecycle.settled(this.d, id); }
  delete(p: Principal | null, idOrSlug: string, reason: StopReason = 'request'): Promise<void> { return lifecycle.remove(this.d, p, idOrSlug, reason); }
  /** Wait for all in-flight provisioning (shutdown). */
  drain(): Promise<void> { return lifecycle.drain(this.d); }

  // power
  start(p: Principal, idOrSlug: string): Promise<Workspace> { return power.start(this.d, p, idOrSlug); }
  stop(p: Principal | null, idOrSlug: string, reason: StopReason = 'request'): Promise<Workspace | null> { return power.stop(this.d, p, idOrSlug, reason); }
  restart(p: Principal, idOrSlug: string): Promise<Workspace> { return power.restart(this.d, p, idOrSlug); }
  pause(p: Principal, idOrSlug: string): Promise<Workspace> { return power.pause(this.d, p, idOrSlug); }
  resume(p: Principal, idOrSlug: string): Promise<Workspace> { return power.resume(this.d, p, idOrSlug); }
  /** Wake a sleeping workspace and wait until it serves (gateway, edge, SSH). */
  wake(id: string): Promise<Workspace | null> { return power.wake(this.d, id); }

  // name, slug, config
  update(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> { return update(this.d, p, idOrSlug, body); }

  // resources and disk (control/resources.ts)
  resize(p: Principal, idOrSlug: string, body: Record<string, unknown>, partial: boolean): Promise<resources.ResizeResult> { return resources.resize(this.d, p, idOrSlug, body, partial); }
  diskUsage(p: Principal, idOrSlug: string): ReturnType<typeof resources.diskUsage> { return resources.diskUsage(this.d, p, idOrSlug); }
  overlay(p: Principal, idOrSlug: string, limit: number): ReturnType<typeof resources.overlay> { return resources.overlay(this.d, p, idOrSlug, limit); }
  syncDisk(p: Principal, idOrSlug: string, guestSync: (ws: Workspace) => Promise<boolean>): ReturnType<typeof resources.syncDisk> { return resources.syncDisk(this.d, p, idOrSlug, guestSync); }

  // runtime access tokens
  setRuntimeEnabled(ws: Workspace, enabled: boolean): Promise<Workspace> { return access.setRuntimeEnabled(this.d, ws, enabled); }
  rotateRuntimeToken(ws: Workspace): Promise<Workspace> { return access.rotateRuntimeToken(this.d, ws); }

  // for the namespace service
  idsInNamespace(slug: string, states?: string[]): Promise<string[]> { return queries.idsInNamespace(this.d, slug, states); }
  stopSystem(id: string, reason: 'namespace' | 'quota'): Promise<void> { return power.stopSystem(this.d, id, reason); }
  deleteSystem(id: string): Promise<void> { return lifecycle.remove(this.d, null, id, 'namespace'); }
  usageNow(slug: string, excludeId?: string): Promise<{ workspaces: number; totalVcpus: number; totalRamMb: number }> { return queries.usageNow(this.d, slug, excludeId); }

  // activity and idle sleep (§6)
  /** Record activity (edge HTTP traffic, ping): it postpones idle sleep. */
  touch(id: string): void { idle.touch(this.d, id); }
  /** The edge's name for touch(): HTTP traffic through the edge is activity (§6). */
  noteActivity(id: string): void { idle.touch(this.d, id); }
  lastActivity(ws: Workspace): number { return idle.lastActivity(this.d, ws); }
  setIdle(p: Principal, idOrSlug: string, body: Record<string, unknown>, minSuspendSeconds: number): Promise<Workspace> { return idle.setIdle(this.d, p, idOrSlug, body, minSuspendSeconds); }
  sleepIdle(): Promise<number> { return idle.sleepIdle(this.d); }

  // mode and TTL
  makePermanent(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> { return ttl.makePermanent(this.d, p, idOrSlug, body); }
  makeTemporary(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> { return ttl.makeTemporary(this.d, p, idOrSlug, body); }
  updateTtl(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> { return ttl.updateTtl(this.d, p, idOrSlug, body); }
  ping(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Workspace> { return ttl.ping(this.d, p, idOrSlug, body); }
  reapExpired(): Promise<number> { return ttl.reapExpired(this.d); }

  // metadata (§16)
  metadata(ws: Workspace): Promise<Record<string, string>> { return meta.metadata(this.d, ws); }
  setMetadata(p: Principal, idOrSlug: string, input: unknown, merge: boolean): Promise<Record<string, string>> { return meta.setMetadata(this.d, p, idOrSlug, input, merge); }

  // what the host knows, for the routes (host-facts.ts)
  /** The agent's internal endpoint; null while the workspace holds no network slot. */
  endpoint(ws: Pick<Workspace, 'slotIndex'>): AgentEndpoint | null { return facts.endpoint(this.d, ws); }
  stats(ws: Workspace): Promise<facts.SandboxStats | null> { return facts.stats(this.d, ws); }
  egressBytes(ws: Pick<Workspace, 'slotIndex'>): Promise<number | null> { return facts.egressBytes(this.d, ws); }
  /** The outbound (SNAT) address in effect; null = the host's outgoing interface address. */
  outboundIp(ws: Pick<Workspace, 'config'>): string | null { return facts.outboundIp(this.d, ws); }
  /** How many network slots (so workspaces) this host has. */
  get capacity(): number { return facts.capacity(this.d); }
  /** The image catalog (§19). */
  catalog(): Promise<facts.ImageCatalogEntry[]> { return facts.catalog(this.d); }

  // warm pools (control/warm-pool)
  /** Pooled sandboxes' refs (each with its air-gapped policy), for the firewall's sync at start. */
  poolRefs(): SandboxRef[] { return this.d.pool?.refs() ?? []; }
  /** What the warm pool holds; null when pools are off. */
  poolSummary(): ReturnType<WarmPool['summary']> | null { return this.d.pool?.summary() ?? null; }
  /** Wait until the pool's refill has nothing left to do (tests, bench). */
  poolIdle(): Promise<void> { return this.d.pool?.idle() ?? Promise.resolve(); }
  /** Shutdown: stop refilling and remove every pooled sandbox. */
  closePool(): Promise<void> { return this.d.pool?.close() ?? Promise.resolve(); }

  /** Startup reconcile with the host; returns a per-action summary. */
  reconcile(): Promise<Record<string, number>> { return reconcile(this.d); }
}
