/**
 * Proof of ownership of custom domains (§10): a custom hostname (anything
 * outside the preview domain) routes only after its workspace proves it
 * controls the domain with a `_hearth-challenge` TXT record carrying the
 * claim's token (src/control/domain-proof.ts holds the pure rules). This
 * module owns the `domain_claims` table: opening claims, looking up their
 * TXT records, routing the names a proof covers, and putting unused or
 * pre-proof routes back to pending. Until proven a claim is `pending`: the
 * edge answers "not routed" and no certificate is requested. Proof is
 * checked on connect/expose, on every read, on checkDNS/verify and on a
 * timer. It lives apart from PublicAccessService so the routing table and
 * the ownership rules can each be read whole: the service constructs it,
 * shares its database, per-workspace lock and routing table with it, and
 * delegates every proof question to it.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { AlreadyExists } from '../core/errors.ts';
import type { KeyedMutex } from '../core/keyed-mutex.ts';
import type { Principal } from '../auth/principal.ts';
import { isUnder } from '../core/hostnames.ts';
import type { EdgeRoute, PublicAccessOptions } from './public-access.ts';
import { isUniqueViolation, type DomainClaimTable, type PublicDb } from './public-tables.ts';
import { challengeHost, covers, domainStatus, nextClaimStatus, requiredTxt, tokenFromBytes, txtProves } from './domain-proof.ts';

const now = () => new Date().toISOString();

/** A custom hostname a workspace asked for (connected domain or exposed port), with the domain whose proof covers it. */
export interface WantedHost { workspaceId: string; hostname: string; port: number; source: 'domain' | 'port'; domain: string }

/** What DomainClaims shares with PublicAccessService (which owns the routing table and the edge). */
export interface DomainClaimsDeps {
  db: PublicDb;
  /** The service's per-workspace lock: routing a proven name must not race a connect/expose of the same workspace. */
  locks: KeyedMutex;
  log: Logger;
  /** The service's own options object, read at each use as the service reads it. */
  opts: Pick<PublicAccessOptions, 'previewDomain' | 'resolveDns'>;
  /** The edge's in-memory route of a hostname (which workspace it reaches now). */
  routedTo: (hostname: string) => string | undefined;
  /** Re-read the routing table after edge_hosts changed. */
  reload: () => Promise<void>;
  /** Names verifyWorkspace just routed (after the reload): open their ports, request certificates. */
  routed: (workspaceId: string, activated: { hostname: string; port: number }[]) => Promise<void>;
}

export class DomainClaims {
  constructor(private readonly deps: DomainClaimsDeps) {}

  private get db(): PublicDb {
    return this.deps.db;
  }

  /** Names outside the preview domain are the caller's to prove; preview names are the platform's. */
  needsProof(hostname: string): boolean {
    return !isUnder(hostname, this.deps.opts.previewDomain);
  }

  async provenByWorkspace(): Promise<Map<string, string[]>> {
    const rows = await this.db.selectFrom('domain_claims').select(['workspace_id', 'domain']).where('status', '=', 'verified').execute();
    const out = new Map<string, string[]>();
    for (const r of rows) out.set(r.workspace_id, [...(out.get(r.workspace_id) ?? []), r.domain]);
    return out;
  }

  async provenDomains(db: PublicDb, workspaceId: string): Promise<string[]> {
    const rows = await db.selectFrom('domain_claims').select('domain').where('workspace_id', '=', workspaceId).where('status', '=', 'verified').execute();
    return rows.map((r) => r.domain);
  }

  /** Every custom hostname a workspace asked for (connected domains, exposed ports), with its port and the domain whose proof covers it. */
  async wanted(db: PublicDb, workspaceId?: string): Promise<WantedHost[]> {
    let wd = db.selectFrom('workspace_domains').selectAll();
    let pp = db.selectFrom('public_ports').selectAll().where('domain', 'is not', null);
    if (workspaceId) { wd = wd.where('workspace_id', '=', workspaceId); pp = pp.where('workspace_id', '=', workspaceId); }
    const out: WantedHost[] = [];
    for (const r of await wd.execute()) {
      for (const hostname of r.include_www && !r.domain.startsWith('www.') ? [r.domain, `www.${r.domain}`] : [r.domain]) {
        out.push({ workspaceId: r.workspace_id, hostname, port: r.port, source: 'domain', domain: r.domain });
      }
    }
    for (const r of await pp.execute()) {
      if (this.needsProof(r.hostname)) out.push({ workspaceId: r.workspace_id, hostname: r.hostname, port: r.port, source: 'port', domain: r.domain! });
    }
    return out;
  }

  /** Custom hostnames asked for that `routed` does not route to the workspace that asked (the edge's "pending" answer). */
  async wantedCustomHosts(routed: Map<string, EdgeRoute>): Promise<Set<string>> {
    return new Set((await this.wanted(this.db)).filter((w) => routed.get(w.hostname)?.workspaceId !== w.workspaceId).map((w) => w.hostname));
  }

  /** checkDNS/verify without a workspace: verify each of the caller's workspaces that claimed `domain`; returns the first. */
  async verifyClaimants(principal: Principal, domain: string): Promise<string | undefined> {
    const ids = (await this.db.selectFrom('domain_claims').innerJoin('workspaces', 'workspaces.id', 'domain_claims.workspace_id')
      .select(['domain_claims.workspace_id', 'workspaces.namespace']).where('domain_claims.domain', '=', domain).execute())
      .filter((r) => (principal.workspaceId === null || principal.workspaceId === r.workspace_id)
        && (principal.namespace === null || principal.namespace === r.namespace))
      .map((r) => r.workspace_id);
    for (const id of ids) await this.verifyWorkspace(id);
    return ids[0];
  }

  /** The workspace's claim of `domain`, opened (pending, fresh token) if it has none; an existing claim keeps its token. */
  async ensureClaim(db: PublicDb, workspaceId: string, domain: string): Promise<DomainClaimTable> {
    await db.insertInto('domain_claims').values({
      workspace_id: workspaceId, domain, token: tokenFromBytes(randomBytes(20)), status: 'pending',
      verified_at: null, checked_at: null, last_error: null, created_at: now(),
    }).onConflict((oc) => oc.columns(['workspace_id', 'domain']).doNothing()).execute();
    return db.selectFrom('domain_claims').selectAll().where('workspace_id', '=', workspaceId).where('domain', '=', domain).executeTakeFirstOrThrow();
  }

  private async claimOf(workspaceId: string, domain: string): Promise<DomainClaimTable | undefined> {
    return this.db.selectFrom('domain_claims').selectAll().where('workspace_id', '=', workspaceId).where('domain', '=', domain).executeTakeFirst();
  }

  /** The proof that counts for `domain`: a proven claim of it or of a parent (example.org for api.example.org), else its own claim. */
  async effectiveClaim(workspaceId: string, domain: string): Promise<DomainClaimTable | undefined> {
    const parent = (await this.db.selectFrom('domain_claims').selectAll().where('workspace_id', '=', workspaceId).where('status', '=', 'verified').execute())
      .filter((c) => covers(c.domain, domain)).sort((a, b) => b.domain.length - a.domain.length)[0];
    return parent ?? this.claimOf(workspaceId, domain);
  }

  /**
   * A port's new hostname: whether it needs proof (then a name routed to another workspace is a 409) and
   * whether it routes at once (a preview-domain name, or a custom one this workspace's proof already covers).
   */
  async admit(workspaceId: string, hostname: string): Promise<{ proof: boolean; routeNow: boolean }> {
    const proof = this.needsProof(hostname);
    if (proof) await this.refuseIfRoutedElsewhere(workspaceId, [hostname]);
    return { proof, routeNow: !proof || (await this.provenDomains(this.db, workspaceId)).some((d) => covers(d, hostname)) };
  }

  /** A name routed to another workspace cannot be claimed (409); a pending claim elsewhere does not block. */
  async refuseIfRoutedElsewhere(workspaceId: string, hostnames: string[]): Promise<void> {
    for (const hostname of hostnames) {
      const holder = await this.db.selectFrom('edge_hosts').select('workspace_id').where('hostname', '=', hostname).executeTakeFirst();
      if (holder && holder.workspace_id !== workspaceId) throw new AlreadyExists('hostname', hostname);
    }
  }

  /**
   * Proven claims the workspace no longer uses (disconnected, revoked, moved)
   * go back to pending, token kept (nextClaimStatus): a proof is not a
   * permanent title to a domain that may since have changed hands.
   */
  async relaxUnusedClaims(workspaceId: string): Promise<void> {
    const wanted = await this.wanted(this.db, workspaceId);
    for (const c of await this.db.selectFrom('domain_claims').selectAll().where('workspace_id', '=', workspaceId).where('status', '=', 'verified').execute()) {
      // In use = some name the workspace asks for is covered by it (its own domain or a name under it).
      if (nextClaimStatus(c.status, { found: false, inUse: wanted.some((w) => covers(c.domain, w.hostname)) }) === 'verified') continue;
      await this.db.updateTable('domain_claims').set({ status: 'pending', verified_at: null, last_error: null })
        .where('workspace_id', '=', workspaceId).where('domain', '=', c.domain).execute();
    }
  }

  /** Look up the TXT record of one claim; a pending claim whose record is found becomes verified. Idempotent. */
  private async checkClaim(claim: DomainClaimTable): Promise<DomainClaimTable> {
    if (claim.status === 'verified') return claim;
    let found = false;
    let error: string | null = null;
    if (!this.deps.opts.resolveDns) error = 'DNS checks are disabled on this server';
    else {
      try {
        found = txtProves(await this.deps.opts.resolveDns(challengeHost(claim.domain), 'TXT'), claim.token);
        if (!found) error = `the TXT record at ${challengeHost(claim.domain)} does not carry this claim's token`;
      } catch (err) {
        const code = (err as { code?: string }).code;
        error = code === 'ENODATA' || code === 'ENOTFOUND' ? `no TXT record at ${challengeHost(claim.domain)} yet` : `TXT lookup failed: ${code ?? (err as Error).message}`;
      }
    }
    const status = nextClaimStatus(claim.status, { found });
    const at = now();
    const next: DomainClaimTable = { ...claim, status, checked_at: at, last_error: found ? null : error, verified_at: status === 'verified' ? at : null };
    await this.db.updateTable('domain_claims').set({ status: next.status, checked_at: at, last_error: next.last_error, verified_at: next.verified_at })
      .where('workspace_id', '=', claim.workspace_id).where('domain', '=', claim.domain).where('status', '=', 'pending').execute();
    if (found) this.deps.log.info({ workspace: claim.workspace_id, domain: claim.domain }, 'domain ownership proven');
    return next;
  }

  /**
   * Check the workspace's pending claims, then route every asked-for custom
   * name a proof now covers (and request its certificate). A name meanwhile
   * routed to another workspace stays unrouted here. Idempotent.
   */
  async verifyWorkspace(workspaceId: string): Promise<void> {
    await this.relaxUnusedClaims(workspaceId);
    // Only claims in use and not already covered by a proven parent are looked up: an unused one is not
    // proven again behind its owner's back.
    const used = new Set((await this.wanted(this.db, workspaceId)).map((w) => w.domain));
    const provenNow = await this.provenDomains(this.db, workspaceId);
    const pendingClaims = (await this.db.selectFrom('domain_claims').selectAll().where('workspace_id', '=', workspaceId).where('status', '=', 'pending').execute())
      .filter((c) => used.has(c.domain) && !provenNow.some((d) => covers(d, c.domain)));
    for (const c of pendingClaims) await this.checkClaim(c);
    const activated = await this.deps.locks.run(workspaceId, async () => {
      const proven = await this.provenDomains(this.db, workspaceId);
      if (!proven.length) return [];
      const out: { hostname: string; port: number }[] = [];
      for (const w of await this.wanted(this.db, workspaceId)) {
        if (!proven.some((d) => covers(d, w.hostname))) continue;
        const holder = await this.db.selectFrom('edge_hosts').select('workspace_id').where('hostname', '=', w.hostname).executeTakeFirst();
        if (holder?.workspace_id === workspaceId) continue;
        if (holder) {
          await this.db.updateTable('domain_claims').set({ last_error: `${w.hostname} is routed to another workspace` })
            .where('workspace_id', '=', workspaceId).where('domain', '=', w.domain).execute();
          continue;
        }
        try {
          await this.db.insertInto('edge_hosts').values({ hostname: w.hostname, workspace_id: workspaceId, port: w.port, source: w.source, created_at: now() }).execute();
          out.push({ hostname: w.hostname, port: w.port });
        } catch (err) {
          if (!isUniqueViolation(err)) throw err;
        }
      }
      return out;
    });
    if (!activated.length && !pendingClaims.length) return;
    await this.deps.reload();
    if (!activated.length) return;
    await this.deps.routed(workspaceId, activated);
  }

  /** The timer's pass: every workspace with a pending claim or a proven name not routed yet. */
  async verifyPending(): Promise<void> {
    const ids = new Set<string>();
    for (const w of await this.wanted(this.db)) if (this.deps.routedTo(w.hostname) !== w.workspaceId) ids.add(w.workspaceId);
    for (const id of ids) await this.verifyWorkspace(id).catch((err) => this.deps.log.warn({ workspace: id, err }, 'domain verification failed'));
  }

  /**
   * After an upgrade: custom names routed before proofs existed lose their
   * route and get a pending claim, so nothing stays routed on a first-come
   * basis (the secure default). Returns the names demoted.
   */
  async demoteUnproven(): Promise<string[]> {
    const proven = await this.provenByWorkspace();
    const wanted = await this.wanted(this.db);
    const demoted: string[] = [];
    for (const r of await this.db.selectFrom('edge_hosts').selectAll().execute()) {
      if (!this.needsProof(r.hostname) || (proven.get(r.workspace_id) ?? []).some((d) => covers(d, r.hostname))) continue;
      const w = wanted.find((x) => x.workspaceId === r.workspace_id && x.hostname === r.hostname);
      await this.db.transaction().execute(async (trx) => {
        await trx.deleteFrom('edge_hosts').where('hostname', '=', r.hostname).execute();
        if (w) await this.ensureClaim(trx, r.workspace_id, w.domain);
      });
      demoted.push(r.hostname);
    }
    if (demoted.length) this.deps.log.warn({ hostnames: demoted }, 'custom hostnames without proof of ownership are pending until their TXT record exists');
    return demoted;
  }

  /** What the API shows about a claim: its status and the record to create. */
  async proofView(workspaceId: string, domain: string, hostnames: string[]): Promise<{ status: string; verification: Record<string, unknown> } | null> {
    const claim = await this.effectiveClaim(workspaceId, domain);
    if (!claim) return null;
    const routed = hostnames.every((h) => this.deps.routedTo(h) === workspaceId);
    return {
      status: domainStatus(claim.status, routed),
      verification: {
        ...requiredTxt(claim.domain, claim.token), status: claim.status, verified: claim.status === 'verified',
        verified_at: claim.verified_at, checked_at: claim.checked_at, error: claim.last_error,
      },
    };
  }
}
