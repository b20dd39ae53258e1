/**
 * Public access (§9) and custom domains (§10): which hostnames the edge
 * answers for and which workspace port each one reaches. The store's
 * `edge_hosts` table is the single owner of hostname claims: its primary key
 * makes "already taken by another workspace" a 409 without a race, and its
 * ON DELETE CASCADE releases a deleted workspace's names in the same
 * transaction. The edge keeps an in-memory copy of the table (`routes()`),
 * reloaded after every change here and every few seconds (to see cascades);
 * listeners hear which routes went away so the edge can cut their
 * connections at once.
 *
 * A custom hostname (outside the preview domain) routes only once its
 * workspace proved it owns the domain (src/control/domain-claims.ts); until
 * then it holds no `edge_hosts` row, so a pending claim cannot squat a name.
 */
import type { Logger } from 'pino';
import type { Db } from '../store/db.ts';
import type { Principal } from '../auth/principal.ts';
import { adminPrincipal, type WorkspaceService } from './workspaces/index.ts';
import type { Workspace } from './workspaces/row.ts';
import { AlreadyExists, NotFound, ValidationFailed } from '../core/errors.ts';
import { KeyedMutex } from '../core/keyed-mutex.ts';
import {
  exposeHostname, isUnder, previewHash, publicUrl, validateDomain, validatePort, validatePreviewSlug, type EdgePorts,
} from '../core/hostnames.ts';
import { isUniqueViolation, publicDb, type EdgeHostTable, type PublicDb, type PublicPortTable } from './public-tables.ts';
import { covers, requiredTxt } from './domain-proof.ts';
import { DomainClaims } from './domain-claims.ts';

export const MAX_PUBLIC_PORTS = 20;

/** More than MAX_PUBLIC_PORTS exposed ports on one workspace. */
export class PortLimitReached extends Error {
  constructor(readonly current: number, readonly max: number) {
    super(`a workspace can expose at most ${max} ports (it has ${current}); revoke one first`);
    this.name = 'PortLimitReached';
  }
}

/** One route of the edge: hostname → workspace port. */
export interface EdgeRoute {
  hostname: string;
  workspaceId: string;
  port: number;
  source: EdgeHostTable['source'];
}

export interface SslInfo {
  status: 'none' | 'pending' | 'active' | 'failed';
  source: 'acme' | 'hearth-ca' | null;
  expiresAt: string | null;
  error: string | null;
}

/** What this service needs from the certificate manager (src/edge/certs.ts). */
export interface CertificateIssuer {
  /** Start (or keep) obtaining a publicly trusted certificate for a custom hostname. */
  request(hostname: string, workspaceId: string): Promise<void>;
  /** Renew now, whatever the expiry; resolves when done or failed. */
  renew(hostname: string, workspaceId: string): Promise<SslInfo>;
  info(hostname: string): Promise<SslInfo>;
  /** The hostname is no longer routed: forget its certificate. */
  release(hostname: string): Promise<void>;
  setAutoRenew(hostname: string, enabled: boolean): Promise<boolean>;
  list(): Promise<{ hostname: string; workspaceId: string | null; source: string; status: string; autoRenew: boolean; expiresAt: string | null; lastAttemptAt: string | null; lastError: string | null; renewAttempts: number }[]>;
}

export interface PublicAccessOptions {
  /** Base of preview hostnames, e.g. `preview.localhost`. */
  previewDomain: string;
  maxPorts: number;
  /** The edge's public ports (known once its listeners are bound). */
  edgePorts: () => EdgePorts;
  /** Addresses users point their DNS at (shown by checkDNS). */
  edgeIps?: () => string[];
  /** DNS lookups for checkDNS; injected so tests and air-gapped hosts control where queries go. */
  resolveDns?: (name: string, type: 'A' | 'CNAME' | 'TXT') => Promise<string[]>;
}

export type RoutesListener = (removed: EdgeRoute[]) => void;

const now = () => new Date().toISOString();
const routeKey = (r: { workspaceId: string; port: number }) => `${r.workspaceId}:${r.port}`;
const domainNames = (domain: string, includeWww: boolean) => (includeWww && !domain.startsWith('www.') ? [domain, `www.${domain}`] : [domain]);

export class PublicAccessService {
  private readonly db: PublicDb;
  private readonly locks = new KeyedMutex();
  private table = new Map<string, EdgeRoute>();
  /** Custom hostnames asked for whose proof of ownership is missing (the edge says so instead of a bare 404). */
  private pendingHosts = new Set<string>();
  private readonly listeners = new Set<RoutesListener>();
  certs: CertificateIssuer | null = null;
  /** Proof of ownership of custom domains: the `domain_claims` table and what routes once proven. */
  private readonly claims: DomainClaims;

  constructor(
    db: Db,
    private readonly workspaces: WorkspaceService,
    private readonly log: Logger,
    readonly opts: PublicAccessOptions,
  ) {
    this.db = publicDb(db);
    this.claims = new DomainClaims({
      db: this.db, locks: this.locks, log, opts,
      routedTo: (hostname) => this.table.get(hostname)?.workspaceId,
      reload: () => this.reload(),
      routed: (workspaceId, activated) => this.announceRouted(workspaceId, activated),
    });
  }

  // ------------------------------------------------------------ the edge's view

  /** Route for a (normalized) hostname, from memory: the edge's hot path. */
  route(hostname: string): EdgeRoute | undefined {
    return this.table.get(hostname);
  }

  routes(): EdgeRoute[] {
    return [...this.table.values()];
  }

  /** A custom hostname someone asked for that is not routed yet because its domain is not proven. */
  pending(hostname: string): boolean {
    return this.pendingHosts.has(hostname) && !this.table.has(hostname);
  }

  onRoutesRemoved(fn: RoutesListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Re-read the table; tell listeners which (workspace, port) pairs lost every hostname. */
  async reload(): Promise<void> {
    const rows = await this.db.selectFrom('edge_hosts').selectAll().execute();
    const proven = await this.claims.provenByWorkspace();
    const closed = await this.closedWorkspaces(rows.map((r) => r.workspace_id));
    const next = new Map<string, EdgeRoute>();
    for (const r of rows) {
      // network.update({ public_access:false }): the rows stay (so true restores them), nothing routes.
      if (closed.has(r.workspace_id)) continue;
      // Defence in depth: a custom name without a proven claim is never routed, however its row got here.
      if (this.claims.needsProof(r.hostname) && !(proven.get(r.workspace_id) ?? []).some((d) => covers(d, r.hostname))) continue;
      next.set(r.hostname, { hostname: r.hostname, workspaceId: r.workspace_id, port: r.port, source: r.source });
    }
    this.pendingHosts = await this.claims.wantedCustomHosts(next);
    const live = new Set([...next.values()].map(routeKey));
    const removed = [...this.table.values()].filter((r) => !next.has(r.hostname) || routeKey(next.get(r.hostname)!) !== routeKey(r));
    this.table = next;
    const gone = removed.filter((r) => !live.has(routeKey(r)));
    if (gone.length) for (const fn of this.listeners) fn(gone);
    // Certificates of hostnames that are no longer routed (e.g. the workspace was deleted).
    if (this.certs && removed.length) for (const r of removed) if (!next.has(r.hostname)) await this.certs.release(r.hostname).catch(() => undefined);
  }

  // ------------------------------------------------------------ proof of ownership (src/control/domain-claims.ts)

  /** Check the workspace's pending claims and route what a proof now covers (DomainClaims.verifyWorkspace). */
  async verifyWorkspace(workspaceId: string): Promise<void> { return this.claims.verifyWorkspace(workspaceId); }

  /** The timer's pass over every workspace with a pending claim or a proven name not routed yet. */
  async verifyPending(): Promise<void> { return this.claims.verifyPending(); }

  /** After an upgrade: unproven custom routes go back to pending; returns the names demoted. */
  async demoteUnproven(): Promise<string[]> { return this.claims.demoteUnproven(); }

  /** verifyWorkspace routed these names: open their ports and request their certificates. */
  private async announceRouted(workspaceId: string, activated: { hostname: string; port: number }[]): Promise<void> {
    const ws = await this.workspaces.byId(workspaceId);
    for (const a of activated) {
      if (ws) await this.syncIngressPorts(adminPrincipal, ws, a.port);
      await this.certs?.request(a.hostname, workspaceId);
      this.log.info({ workspace: workspaceId, hostname: a.hostname }, 'custom hostname routed after proof of ownership');
    }
  }

  // ------------------------------------------------------------ §9 ports

  async list(p: Principal, idOrSlug: string): Promise<Record<string, unknown>[]> {
    const ws = await this.workspaces.find(p, idOrSlug);
    await this.verifyWorkspace(ws.id);
    const rows = await this.db.selectFrom('public_ports').selectAll().where('workspace_id', '=', ws.id).orderBy('port').execute();
    return Promise.all(rows.map((r) => this.portView(r)));
  }

  async expose(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const ws = await this.workspaces.find(p, idOrSlug);
    const port = validatePort(body.port);
    const slug = body.slug === undefined || body.slug === null || body.slug === '' ? null : validatePreviewSlug(body.slug);
    const domain = body.domain === undefined || body.domain === null || body.domain === '' ? null : validateDomain(body.domain);
    if (body.label !== undefined && body.label !== null && (typeof body.label !== 'string' || body.label.length > 255)) {
      throw new ValidationFailed('label', 'label must be a string of at most 255 characters');
    }
    const label = typeof body.label === 'string' ? body.label : null;
    if (domain && !slug && domain !== this.opts.previewDomain && isUnder(domain, this.opts.previewDomain)) {
      throw new ValidationFailed('domain', `hostnames under ${this.opts.previewDomain} are preview URLs: pass slug instead`);
    }
    const row = await this.locks.run(ws.id, async () => {
      const existing = await this.db.selectFrom('public_ports').selectAll().where('workspace_id', '=', ws.id).where('port', '=', port).executeTakeFirst();
      if (existing) {
        // Exposing an exposed port returns its record; a new slug/domain moves it.
        const same = (slug === null || slug === existing.slug) && (domain === null || domain === existing.domain);
        if (same) {
          if (label !== null && label !== existing.label) {
            await this.db.updateTable('public_ports').set({ label, updated_at: now() }).where('workspace_id', '=', ws.id).where('port', '=', port).execute();
            return { ...existing, label };
          }
          return existing;
        }
        return this.rehost(ws, existing, slug ?? existing.slug, domain ?? existing.domain);
      }
      const count = Number((await this.db.selectFrom('public_ports').select((eb) => eb.fn.countAll<number>().as('n')).where('workspace_id', '=', ws.id).executeTakeFirstOrThrow()).n);
      if (count >= this.opts.maxPorts) throw new PortLimitReached(count, this.opts.maxPorts);
      const at = now();
      const hash = previewHash();
      const { hostname, custom } = exposeHostname({ hash, slug, domain }, this.opts.previewDomain);
      const previewHost = `${hash}.${this.opts.previewDomain}`;
      const fresh: PublicPortTable = { workspace_id: ws.id, port, hash, slug, domain, hostname, label, created_at: at, updated_at: at };
      // A custom name routes now only if already proven; else it waits (pending) and verifyWorkspace routes it.
      const { proof, routeNow } = hostname !== previewHost ? await this.claims.admit(ws.id, hostname) : { proof: false, routeNow: false };
      await this.claimAll(ws.id, [
        { hostname: previewHost, port, source: 'preview' },
        ...(routeNow ? [{ hostname, port, source: 'port' as const }] : []),
      ], async (trx) => {
        await trx.insertInto('public_ports').values(fresh).execute();
        if (proof) await this.claims.ensureClaim(trx, ws.id, domain!);
      });
      if (custom && routeNow) await this.certs?.request(hostname, ws.id);
      return fresh;
    });
    await this.reload();
    if (this.claims.needsProof(row.hostname)) await this.verifyWorkspace(ws.id);
    await this.syncIngressPorts(p, ws, port);
    this.log.info({ workspace: ws.id, port, hostname: row.hostname }, 'port exposed');
    return this.portView(row);
  }

  async updateSlug(p: Principal, idOrSlug: string, portIn: unknown, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const ws = await this.workspaces.find(p, idOrSlug);
    const port = validatePort(portIn);
    const slug = body.slug === null || body.slug === '' ? null : validatePreviewSlug(body.slug);
    const row = await this.locks.run(ws.id, async () => {
      const existing = await this.db.selectFrom('public_ports').selectAll().where('workspace_id', '=', ws.id).where('port', '=', port).executeTakeFirst();
      if (!existing) throw new NotFound('exposed port', String(port));
      if (existing.slug === slug) return existing;
      return this.rehost(ws, existing, slug, existing.domain);
    });
    await this.reload();
    if (this.claims.needsProof(row.hostname)) await this.verifyWorkspace(ws.id);
    return this.portView(row);
  }

  async revoke(p: Principal, idOrSlug: string, portIn: unknown): Promise<{ port: number; revoked: boolean }> {
    const ws = await this.workspaces.find(p, idOrSlug);
    const port = validatePort(portIn);
    const removed = await this.locks.run(ws.id, async () => {
      const existing = await this.db.selectFrom('public_ports').selectAll().where('workspace_id', '=', ws.id).where('port', '=', port).executeTakeFirst();
      if (!existing) throw new NotFound('exposed port', String(port));
      await this.db.transaction().execute(async (trx) => {
        await trx.deleteFrom('edge_hosts').where('workspace_id', '=', ws.id).where('port', '=', port).where('source', 'in', ['preview', 'port']).execute();
        await trx.deleteFrom('public_ports').where('workspace_id', '=', ws.id).where('port', '=', port).execute();
      });
      return existing;
    });
    // reload() tells the edge, which cuts open connections before this returns.
    await this.reload();
    await this.claims.relaxUnusedClaims(ws.id);
    await this.syncIngressPorts(p, ws, port);
    this.log.info({ workspace: ws.id, port, hostname: removed.hostname }, 'port revoked');
    return { port, revoked: true };
  }

  /** Move an exposed port to a new slug/domain: claim the new name first, then release the old one. */
  private async rehost(ws: Workspace, existing: PublicPortTable, slug: string | null, domain: string | null): Promise<PublicPortTable> {
    const { hostname, custom } = exposeHostname({ hash: existing.hash, slug, domain }, this.opts.previewDomain);
    const previewHost = `${existing.hash}.${this.opts.previewDomain}`;
    const updated: PublicPortTable = { ...existing, slug, domain, hostname, updated_at: now() };
    const moved = hostname !== previewHost && hostname !== existing.hostname;
    const { proof, routeNow } = moved ? await this.claims.admit(ws.id, hostname) : { proof: false, routeNow: false };
    await this.claimAll(ws.id, routeNow ? [{ hostname, port: existing.port, source: 'port' }] : [], async (trx) => {
      // Only this workspace's row: a pending old name never held one, and another's must stay.
      if (existing.hostname !== previewHost && existing.hostname !== hostname) await trx.deleteFrom('edge_hosts').where('hostname', '=', existing.hostname).where('workspace_id', '=', ws.id).execute();
      await trx.updateTable('public_ports').set({ slug, domain, hostname, updated_at: updated.updated_at })
        .where('workspace_id', '=', ws.id).where('port', '=', existing.port).execute();
      if (proof) await this.claims.ensureClaim(trx, ws.id, domain!);
    });
    if (existing.hostname !== previewHost && existing.hostname !== hostname) await this.certs?.release(existing.hostname).catch(() => undefined);
    if (custom && routeNow) await this.certs?.request(hostname, ws.id);
    return updated;
  }

  /** Claim hostnames for a workspace in one transaction with `also`; a name held by anyone else is a 409. */
  private async claimAll(workspaceId: string, claims: { hostname: string; port: number; source: EdgeHostTable['source'] }[], also: (trx: PublicDb) => Promise<void>): Promise<void> {
    try {
      await this.db.transaction().execute(async (trx) => {
        for (const c of claims) {
          const holder = await trx.selectFrom('edge_hosts').select(['workspace_id', 'port']).where('hostname', '=', c.hostname).executeTakeFirst();
          if (holder) throw new AlreadyExists('hostname', c.hostname);
          await trx.insertInto('edge_hosts').values({ hostname: c.hostname, workspace_id: workspaceId, port: c.port, source: c.source, created_at: now() }).execute();
        }
        await also(trx);
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new AlreadyExists('hostname', claims.map((c) => c.hostname).join(', '));
      throw err;
    }
  }

  /**
   * §7: exposing opens the port, so `ingress_ports` lists what the edge routes
   * to. Only `port` is touched: ports the caller opened by hand stay as they are.
   */
  private async syncIngressPorts(p: Principal, ws: Workspace, port: number): Promise<void> {
    const routed = await this.db.selectFrom('edge_hosts').select('port').where('workspace_id', '=', ws.id).where('port', '=', port).executeTakeFirst();
    const fresh = await this.workspaces.byId(ws.id);
    if (!fresh) return;
    const current = Array.isArray(fresh.config.ingress_ports) ? (fresh.config.ingress_ports as unknown[]).filter((x): x is number => typeof x === 'number') : [];
    const has = current.includes(port);
    if (Boolean(routed) === has) return;
    const next = routed ? [...current, port].sort((a, b) => a - b) : current.filter((x) => x !== port);
    await this.workspaces.update(p, ws.id, { config: { ingress_ports: next } }).catch((err) => {
      this.log.warn({ workspace: ws.id, err }, 'could not record ingress_ports');
    });
  }

  private async portView(r: PublicPortTable): Promise<Record<string, unknown>> {
    const previewHost = `${r.hash}.${this.opts.previewDomain}`;
    const ports = this.opts.edgePorts();
    const custom = r.hostname !== previewHost;
    const view: Record<string, unknown> = {
      port: r.port, hash: r.hash, slug: r.slug ?? r.hash, label: r.label ?? undefined, domain: r.domain ?? undefined,
      hostname: r.hostname, url: publicUrl(r.hostname, ports), preview_url: publicUrl(previewHost, ports),
      created_at: r.created_at, updated_at: r.updated_at,
    };
    if (custom && r.hostname !== `${r.slug}.${this.opts.previewDomain}`) view.ssl = await this.sslInfo(r.hostname);
    if (custom && r.domain && this.claims.needsProof(r.hostname)) Object.assign(view, await this.claims.proofView(r.workspace_id, r.domain, [r.hostname]));
    return view;
  }

  private async sslInfo(hostname: string): Promise<SslInfo> {
    return this.certs ? this.certs.info(hostname) : { status: 'none', source: null, expiresAt: null, error: null };
  }

  // ------------------------------------------------------------ §10.1 domains

  async getDomain(p: Principal, idOrSlug: string): Promise<Record<string, unknown> | null> {
    const ws = await this.workspaces.find(p, idOrSlug);
    await this.verifyWorkspace(ws.id);
    const row = await this.db.selectFrom('workspace_domains').selectAll().where('workspace_id', '=', ws.id).executeTakeFirst();
    if (!row) return null;
    const ssl = await this.sslInfo(row.domain);
    return {
      customDomain: row.domain, port: row.port, sslStatus: ssl.status, sslExpiry: ssl.expiresAt, sslError: ssl.error ?? undefined,
      includeWww: row.include_www === 1, url: publicUrl(row.domain, this.opts.edgePorts()), created_at: row.created_at,
      ...(await this.claims.proofView(ws.id, row.domain, domainNames(row.domain, row.include_www === 1))),
    };
  }

  async connectDomain(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const ws = await this.workspaces.find(p, idOrSlug);
    const domain = validateDomain(body.domain);
    if (isUnder(domain, this.opts.previewDomain)) throw new ValidationFailed('domain', `${domain} is under the preview domain ${this.opts.previewDomain}: use publicAccess.expose with a slug`);
    const port = body.port === undefined || body.port === null ? 3000 : validatePort(body.port);
    const includeWww = body.include_www === true || body.include_www === 'true';
    const names = domainNames(domain, includeWww);
    const released = await this.locks.run(ws.id, async () => {
      const old = await this.db.selectFrom('workspace_domains').selectAll().where('workspace_id', '=', ws.id).executeTakeFirst();
      const oldNames = old ? domainNames(old.domain, old.include_www === 1) : [];
      await this.claims.refuseIfRoutedElsewhere(ws.id, names);
      const proven = await this.claims.provenDomains(this.db, ws.id);
      // Names already proven route at once; the rest wait for the TXT record (verifyWorkspace below).
      const routeNow = names.filter((n) => !oldNames.includes(n) && proven.some((d) => covers(d, n)));
      await this.claimAll(ws.id, routeNow.map((hostname) => ({ hostname, port, source: 'domain' as const })), async (trx) => {
        const drop = oldNames.filter((n) => !names.includes(n));
        if (drop.length) await trx.deleteFrom('edge_hosts').where('workspace_id', '=', ws.id).where('hostname', 'in', drop).where('source', '=', 'domain').execute();
        await trx.updateTable('edge_hosts').set({ port }).where('workspace_id', '=', ws.id).where('source', '=', 'domain').execute();
        // Nobody routes the name (checked again here, atomically with the takeover), so another workspace's
        // row for it is an unproven claim: it does not hold the name — whoever proves the domain first gets it.
        for (const n of names) {
          const holder = await trx.selectFrom('edge_hosts').select('workspace_id').where('hostname', '=', n).executeTakeFirst();
          if (holder && holder.workspace_id !== ws.id) throw new AlreadyExists('hostname', n);
        }
        await trx.deleteFrom('workspace_domains').where('domain', '=', domain).where('workspace_id', '!=', ws.id).execute();
        await trx.deleteFrom('workspace_domains').where('workspace_id', '=', ws.id).execute();
        await trx.insertInto('workspace_domains').values({ workspace_id: ws.id, domain, port, include_www: includeWww ? 1 : 0, created_at: now() }).execute();
        await this.claims.ensureClaim(trx, ws.id, domain);
      });
      for (const n of routeNow) await this.certs?.request(n, ws.id);
      return oldNames.filter((n) => !names.includes(n));
    });
    for (const n of released) await this.certs?.release(n).catch(() => undefined);
    await this.reload();
    await this.verifyWorkspace(ws.id);
    await this.syncIngressPorts(p, ws, port);
    const ssl = await this.sslInfo(domain);
    const proof = await this.claims.proofView(ws.id, domain, names);
    this.log.info({ workspace: ws.id, domain, port, status: proof?.status }, 'custom domain connected');
    return {
      domain, port, include_www: includeWww, url: publicUrl(domain, this.opts.edgePorts()),
      ssl: { status: ssl.status, expiresAt: ssl.expiresAt, ...(ssl.error ? { error: ssl.error } : {}) },
      ...proof,
      dns: await this.dnsStatus(domain, ws.id),
    };
  }

  async disconnectDomain(p: Principal, idOrSlug: string): Promise<{ domain: string | null }> {
    const ws = await this.workspaces.find(p, idOrSlug);
    const old = await this.locks.run(ws.id, async () => {
      const row = await this.db.selectFrom('workspace_domains').selectAll().where('workspace_id', '=', ws.id).executeTakeFirst();
      if (!row) return null;
      await this.db.transaction().execute(async (trx) => {
        await trx.deleteFrom('edge_hosts').where('workspace_id', '=', ws.id).where('source', '=', 'domain').execute();
        await trx.deleteFrom('workspace_domains').where('workspace_id', '=', ws.id).execute();
      });
      return row;
    });
    await this.reload();
    await this.claims.relaxUnusedClaims(ws.id);
    if (old) await this.syncIngressPorts(p, ws, old.port);
    if (!old) throw new NotFound('custom domain of workspace', ws.id);
    return { domain: old.domain };
  }

  async renewDomain(p: Principal, idOrSlug: string): Promise<Record<string, unknown>> {
    const ws = await this.workspaces.find(p, idOrSlug);
    const row = await this.db.selectFrom('workspace_domains').selectAll().where('workspace_id', '=', ws.id).executeTakeFirst();
    if (!row) throw new NotFound('custom domain of workspace', ws.id);
    const ssl = this.certs ? await this.certs.renew(row.domain, ws.id) : await this.sslInfo(row.domain);
    return { domain: row.domain, ssl: { status: ssl.status, expiresAt: ssl.expiresAt, ...(ssl.error ? { error: ssl.error } : {}) } };
  }

  /**
   * §10.1 checkDNS / §10.2 verify: what the domain's DNS says and what it
   * should say. With a workspace (checkDNS's, verify's resource_id, or each
   * of the caller's workspaces that claimed the domain) it also checks that
   * workspace's proof of ownership and routes the domain once proven.
   */
  async checkDns(domainIn: unknown, scope?: { principal: Principal; workspace?: string }): Promise<Record<string, unknown>> {
    const domain = validateDomain(domainIn);
    let workspaceId: string | undefined;
    if (scope?.workspace !== undefined) {
      workspaceId = (await this.workspaces.find(scope.principal, scope.workspace)).id;
      await this.verifyWorkspace(workspaceId);
    } else if (scope) {
      workspaceId = await this.claims.verifyClaimants(scope.principal, domain);
    }
    return { domain, ...(await this.dnsStatus(domain, workspaceId)) };
  }

  private async dnsStatus(domain: string, workspaceId?: string): Promise<Record<string, unknown>> {
    const target = `edge.${this.opts.previewDomain}`;
    const edgeIps = this.opts.edgeIps?.() ?? [];
    const records: Record<string, string[]> = { A: [], CNAME: [] };
    const errors: string[] = [];
    if (this.opts.resolveDns) {
      for (const type of ['A', 'CNAME'] as const) {
        try {
          records[type] = await this.opts.resolveDns(domain, type);
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code !== 'ENODATA' && code !== 'ENOTFOUND') errors.push(`${type} lookup failed: ${code ?? (err as Error).message}`);
        }
      }
    } else {
      errors.push('DNS checks are disabled on this server (start hearth serve with --dns-server to enable them)');
    }
    const cname = records.CNAME!.some((c) => c.replace(/\.$/, '') === target);
    const aOk = records.A!.length > 0 && (edgeIps.length === 0 || records.A!.every((a) => edgeIps.includes(a)));
    // ownership: true once the workspace's TXT proof was found, false while pending, null without a claim.
    const claim = workspaceId ? await this.claims.effectiveClaim(workspaceId, domain) : undefined;
    if (claim && claim.status !== 'verified' && claim.last_error) errors.push(claim.last_error);
    return {
      verified: (cname || aOk) && (!claim || claim.status === 'verified'), cname, ownership: claim ? claim.status === 'verified' : null, records, errors,
      required_records: { cname: { host: domain, target }, ...(claim ? { txt: requiredTxt(claim.domain, claim.token) } : {}) }, edge_ips: edgeIps,
      ...(claim ? { status: claim.status } : {}),
    };
  }

  // ------------------------------------------------------------ §10.2 account helpers

  async checkSlug(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const slug = validatePreviewSlug(body.slug);
    const domain = body.domain === undefined || body.domain === null || body.domain === '' ? this.opts.previewDomain : validateDomain(body.domain);
    const hostname = `${slug}.${domain}`;
    const taken = await this.db.selectFrom('edge_hosts').select('hostname').where('hostname', '=', hostname).executeTakeFirst();
    return { slug, domain, hostname, url: publicUrl(hostname, this.opts.edgePorts()), available: !taken };
  }

  /** Routes the caller can see (its workspaces', filtered by namespace). */
  async listRoutes(p: Principal, namespace: string | undefined): Promise<Record<string, unknown>[]> {
    const rows = await this.db.selectFrom('edge_hosts').innerJoin('workspaces', 'workspaces.id', 'edge_hosts.workspace_id')
      .select(['edge_hosts.hostname', 'edge_hosts.workspace_id', 'edge_hosts.port', 'edge_hosts.source', 'edge_hosts.created_at', 'workspaces.namespace'])
      .orderBy('edge_hosts.hostname').execute();
    const out: Record<string, unknown>[] = [];
    for (const r of rows) {
      if (p.workspaceId !== null && p.workspaceId !== r.workspace_id) continue;
      const ns = p.namespace ?? namespace;
      if (ns && r.namespace !== ns) continue;
      const underPreview = isUnder(r.hostname, this.opts.previewDomain);
      out.push({
        id: r.hostname, hostname: r.hostname, slug: underPreview ? r.hostname.slice(0, -(this.opts.previewDomain.length + 1)) : null,
        domain: underPreview ? this.opts.previewDomain : r.hostname, route_type: r.source === 'domain' ? 'custom_domain' : 'public_port',
        target: `${r.workspace_id}:${r.port}`, owner_type: 'workspace', owner_id: r.workspace_id, namespace: r.namespace,
        is_custom: !underPreview, status: this.table.get(r.hostname)?.workspaceId === r.workspace_id ? 'active' : 'pending', created_at: r.created_at,
      });
    }
    return out;
  }

  async listCertificates(p: Principal, namespace: string | undefined): Promise<Record<string, unknown>[]> {
    if (!this.certs) return [];
    const visible = new Set((await this.listRoutes(p, namespace)).map((r) => r.hostname as string));
    return (await this.certs.list()).filter((c) => visible.has(c.hostname)).map((c) => ({
      domain: c.hostname, active: c.status === 'active', auto_renew: c.autoRenew, expires_at: c.expiresAt, source: c.source,
      status: c.status, last_attempt_at: c.lastAttemptAt, last_error: c.lastError, renew_attempts: c.renewAttempts,
    }));
  }

  async setAutoRenew(p: Principal, domainIn: unknown, enabled: unknown): Promise<{ domain: string; auto_renew: boolean }> {
    const domain = validateDomain(domainIn);
    if (typeof enabled !== 'boolean') throw new ValidationFailed('enabled', 'enabled must be true or false');
    const visible = (await this.listRoutes(p, undefined)).some((r) => r.hostname === domain);
    if (!visible || !this.certs) throw new NotFound('certificate', domain);
    return { domain, auto_renew: await this.certs.setAutoRenew(domain, enabled) };
  }

  /** Workspaces among `ids` whose public access is switched off (config.public_access false). */
  private async closedWorkspaces(ids: string[]): Promise<Set<string>> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return new Set();
    const rows = await this.db.selectFrom('workspaces').select(['id', 'config']).where('id', 'in', unique).execute();
    return new Set(rows.filter((r) => (JSON.parse(r.config) as { public_access?: unknown }).public_access === false).map((r) => r.id));
  }

  /**
   * network.update({ public_access }): every exposed port of the workspace
   * stops (false) or resumes (true) routing through the edge at once; the
   * ports stay exposed in the list, so switching back restores them.
   */
  async setPublicAccess(p: Principal, idOrSlug: string, on: boolean): Promise<void> {
    await this.workspaces.update(p, idOrSlug, { config: { public_access: on } });
    await this.reload();
  }

  /** For GET /workspace/:id/details and the network view. */
  async summary(workspaceId: string): Promise<{ ports: number[]; domain: string | null }> {
    const ports = await this.db.selectFrom('public_ports').select('port').where('workspace_id', '=', workspaceId).orderBy('port').execute();
    const d = await this.db.selectFrom('workspace_domains').select('domain').where('workspace_id', '=', workspaceId).executeTakeFirst();
    return { ports: ports.map((r) => r.port), domain: d?.domain ?? null };
  }
}
