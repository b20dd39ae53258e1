/**
 * The public services and the edge: `publicServicesFor` builds the
 * services behind public access and SSH (the routes, the edge and the SSH
 * gateway share one PublicAccessService and one SshService), and
 * `startEdge` starts the edge once the control plane listens: its CA, ACME
 * and certificate renewal, hearthd's fallback backend on a Unix socket, and
 * the data path — HAProxy serving HTTP and HTTPS, kept equal to the route
 * table through its runtime API (src/edge/data-path.ts). The composition
 * root (src/compose.ts) calls both, and builds and starts the SSH gateway
 * itself.
 */
import path from 'node:path';
import dns from 'node:dns';
import os from 'node:os';
import type { Logger } from 'pino';
import type { Db } from '../store/db.ts';
import type { HostDriver } from '../host/host-driver.ts';
import type { WorkspaceService } from '../control/workspaces/index.ts';
import type { Workspace } from '../control/workspaces/row.ts';
import { createPublicServices, DEFAULT_PREVIEW_DOMAIN, type PublicServices } from '../control/public-services.ts';
import type { EdgePorts } from '../core/hostnames.ts';
import { HearthCA } from './ca.ts';
import { AcmeIssuer } from './acme.ts';
import { CertManager } from './certs.ts';
import { EdgeFallback, type EdgeLifecycle } from './fallback.ts';
import { fileAccessLog } from './access-log.ts';
import { EdgeDataPath, type RouteTarget } from './data-path.ts';
import type { HaproxyLimits } from './haproxy-config.ts';

export interface Listen {
  host: string;
  port: number;
}

export interface PublicPlaneOptions {
  /** null = that listener is off. */
  edgeHttp: Listen | null;
  edgeHttps: Listen | null;
  ssh: Listen | null;
  previewDomain?: string;
  /** ACME directory URL for custom-domain certificates; absent = the Hearth CA signs them. */
  acmeDirectory?: string;
  acmeEmail?: string;
  /** DNS server(s) `host:port` for domain checks and ownership proofs; absent = the system resolver. */
  dnsServers?: string[];
  /** How often pending domain claims are looked up again (ms); default 30 s. */
  domainRecheckMs?: number;
  limits?: Partial<HaproxyLimits> & { wakeBudgetMs?: number };
  /** The HAProxy binary (default /usr/sbin/haproxy). */
  haproxyBinary?: string;
}

export interface PublicPlaneDeps {
  db: Db;
  workspaces: WorkspaceService;
  host: HostDriver;
  log: Logger;
  dataDir: string;
}

/** What the listeners bound, read by the services when they answer (filled in as each listener starts). */
export interface Live {
  edgePorts: EdgePorts;
  ssh: { host: string; port: number } | null;
}

/** Shared state between the services (built first) and the listeners (bound later). */
export interface PublicPlaneHandle {
  services: PublicServices;
  live: Live;
}

/** The host users type for a listener bound to `host` (a wildcard bind is reached by this machine's name). */
export function publicHost(host: string): string {
  return host === '0.0.0.0' || host === '::' ? os.hostname() : host;
}

export function publicServicesFor(deps: PublicPlaneDeps, opts: PublicPlaneOptions): PublicPlaneHandle {
  const live: Live = { edgePorts: { http: null, https: null }, ssh: null };
  const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
  if (opts.dnsServers?.length) resolver.setServers(opts.dnsServers);
  const resolveDns = async (name: string, type: 'A' | 'CNAME' | 'TXT'): Promise<string[]> => {
    if (type === 'A') return resolver.resolve4(name);
    if (type === 'CNAME') return resolver.resolveCname(name);
    return (await resolver.resolveTxt(name)).map((parts) => parts.join(''));
  };
  const services = createPublicServices(deps, {
    previewDomain: opts.previewDomain ?? DEFAULT_PREVIEW_DOMAIN,
    edgePorts: () => live.edgePorts,
    endpoint: () => live.ssh,
    edgeIps: () => [opts.edgeHttps?.host, opts.edgeHttp?.host].filter((h): h is string => !!h && h !== '0.0.0.0' && h !== '::'),
    resolveDns,
  });
  return { services, live };
}

export interface EdgePlane {
  dataPath: EdgeDataPath | null;
  fallback: EdgeFallback | null;
  certs: CertManager | null;
  /** `http://host:port` of the edge's HTTP listener. */
  edgeUrl: string | null;
  edgeTlsUrl: string | null;
  close(): Promise<void>;
}

/** Wake on request (§6): a sleeping workspace is started and awaited; HTTP through the edge is activity. */
function lifecycleHook(workspaces: WorkspaceService): EdgeLifecycle {
  return {
    wake: (ws) => workspaces.wake(ws.id),
    touch: (id) => workspaces.noteActivity(id),
  };
}

/** Workspace rows for the hot path, cached briefly (the route table, not this cache, decides what is reachable). */
function cachedLookup(workspaces: WorkspaceService, ttlMs: number): (id: string) => Promise<Workspace | null> {
  const cache = new Map<string, { ws: Workspace | null; at: number }>();
  return async (id) => {
    const hit = cache.get(id);
    if (hit && Date.now() - hit.at < ttlMs) return hit.ws;
    const ws = await workspaces.byId(id);
    if (cache.size > 10_000) cache.clear();
    cache.set(id, { ws, at: Date.now() });
    return ws;
  };
}

/** The internal address and state of every workspace with routes, in one query. */
function targetsFrom(deps: PublicPlaneDeps): (ids: string[]) => Promise<Map<string, RouteTarget>> {
  return async (ids) => {
    const out = new Map<string, RouteTarget>();
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await deps.db.selectFrom('workspaces').select(['id', 'state', 'slot_index']).where('id', 'in', ids.slice(i, i + 500)).execute();
      for (const r of rows) {
        out.set(r.id, { running: r.state === 'running', ip: r.slot_index === null ? null : deps.host.agentEndpoint({ slotIndex: r.slot_index }).ip });
      }
    }
    return out;
  };
}

/** Reload the route table on a timer and, when a listener is asked for, start the edge. */
export async function startEdge(deps: PublicPlaneDeps, opts: PublicPlaneOptions, handle: PublicPlaneHandle): Promise<EdgePlane> {
  const { services, live } = handle;
  const pa = services.publicAccess;
  const previewDomain = opts.previewDomain ?? DEFAULT_PREVIEW_DOMAIN;
  const internalIp = (ws: Workspace) => (ws.slotIndex === null ? null : deps.host.agentEndpoint({ slotIndex: ws.slotIndex }).ip);
  const lookup = cachedLookup(deps.workspaces, 500);
  let dataPath: EdgeDataPath | null = null;
  let fallback: EdgeFallback | null = null;
  let certs: CertManager | null = null;
  let unsubscribe: (() => void) | null = null;
  const url = (scheme: string, host: string, port: number) => `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;

  // Custom names routed before ownership proofs existed wait for theirs (pending) like any new claim.
  const demoted = await pa.demoteUnproven();
  await pa.reload();
  // Rows vanish by cascade when a workspace is deleted, and workspaces sleep and wake: re-read the table and
  // states so HAProxy follows (a stale entry is safe: a refused connection is redispatched to hearthd).
  const reloader = setInterval(() => { pa.reload().catch((err) => deps.log.warn({ err }, 'route reload failed')); }, 1000);
  reloader.unref();
  // Pending claims are looked up again now and then, so a TXT record created later is noticed without a call.
  let verifying = false;
  const verifier = setInterval(() => {
    if (verifying) return;
    verifying = true;
    pa.verifyPending().catch((err) => deps.log.warn({ err }, 'domain verification pass failed')).finally(() => { verifying = false; });
  }, opts.domainRecheckMs ?? 30_000);
  verifier.unref();

  if (opts.edgeHttp || opts.edgeHttps) {
    if (opts.edgeHttps) {
      const ca = await HearthCA.open(deps.dataDir);
      const acme = opts.acmeDirectory ? new AcmeIssuer(deps.dataDir, { directoryUrl: opts.acmeDirectory, ...(opts.acmeEmail ? { email: opts.acmeEmail } : {}) }) : null;
      certs = new CertManager(deps.dataDir, deps.db, ca, previewDomain, acme, deps.log.child({ component: 'certs' }));
      await certs.init();
      for (const h of demoted) await certs.release(h).catch(() => undefined);
      pa.certs = certs;
    }
    const dir = path.join(deps.dataDir, 'edge', 'haproxy');
    const fallbackSocket = path.join(deps.dataDir, 'edge', 'hearthd.sock');
    const dp = new EdgeDataPath({
      dir, accessLog: fileAccessLog(deps.dataDir), fallbackSocket, http: opts.edgeHttp, https: opts.edgeHttps,
      ...(opts.limits ? { limits: opts.limits } : {}), ...(opts.haproxyBinary ? { binary: opts.haproxyBinary } : {}),
      routes: () => pa.routes(), targets: targetsFrom(deps), certs, log: deps.log.child({ plane: 'edge' }),
      touch: (id) => deps.workspaces.noteActivity(id),
    });
    dataPath = dp;
    let pendingSync = false;
    fallback = new EdgeFallback({
      routes: pa, workspace: lookup, internalIp, certs, lifecycle: lifecycleHook(deps.workspaces), log: deps.log.child({ plane: 'edge' }),
      ...(opts.limits?.wakeBudgetMs ? { limits: { wakeBudgetMs: opts.limits.wakeBudgetMs } } : {}),
      // Woken (or HAProxy's map lags): let HAProxy route this workspace itself from the next request on.
      onRunning: () => {
        if (pendingSync) return;
        pendingSync = true;
        setTimeout(() => { pendingSync = false; void dp.sync().catch(() => undefined); }, 50);
      },
    });
    // The fallback first: HAProxy may send it requests as soon as it starts.
    await fallback.listen(fallbackSocket);
    await dp.start();
    unsubscribe = pa.onRoutesReloaded(() => dp.sync());
    live.edgePorts = { http: dp.http?.port ?? null, https: dp.https?.port ?? null };
  }
  return {
    dataPath, fallback, certs,
    edgeUrl: opts.edgeHttp && live.edgePorts.http !== null ? url('http', opts.edgeHttp.host, live.edgePorts.http) : null,
    edgeTlsUrl: opts.edgeHttps && live.edgePorts.https !== null ? url('https', opts.edgeHttps.host, live.edgePorts.https) : null,
    async close() {
      clearInterval(reloader);
      clearInterval(verifier);
      unsubscribe?.();
      await dataPath?.close();
      await fallback?.close();
      certs?.close();
    },
  };
}
