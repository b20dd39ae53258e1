/**
 * The public services and the edge: `publicServicesFor` builds the
 * services behind public access and SSH (the routes, the edge and the SSH
 * gateway share one PublicAccessService and one SshService), and
 * `startEdge` starts the edge (HTTP + HTTPS) with its CA, ACME and
 * certificate renewal once the control plane listens. The composition root
 * (src/compose.ts) calls both, and builds and starts the SSH gateway itself.
 */
import dns from 'node:dns';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
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
import { Edge, type EdgeLifecycle, type EdgeLimits } from './server.ts';
import { fileAccessLog, type AccessLog } from './access-log.ts';

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
  limits?: Partial<EdgeLimits>;
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
  edge: Edge | null;
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

/** Reload the route table on a timer and, when a listener is asked for, start the edge. */
export async function startEdge(deps: PublicPlaneDeps, opts: PublicPlaneOptions, handle: PublicPlaneHandle): Promise<EdgePlane> {
  const { services, live } = handle;
  const pa = services.publicAccess;
  const previewDomain = opts.previewDomain ?? DEFAULT_PREVIEW_DOMAIN;
  const internalIp = (ws: Workspace) => (ws.slotIndex === null ? null : deps.host.agentEndpoint({ slotIndex: ws.slotIndex }).ip);
  const lookup = cachedLookup(deps.workspaces, 500);
  let edge: Edge | null = null;
  let certs: CertManager | null = null;
  let access: AccessLog | null = null;
  const url = (scheme: string, host: string, port: number) => `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;

  // Custom names routed before ownership proofs existed wait for theirs (pending) like any new claim.
  const demoted = await pa.demoteUnproven();
  await pa.reload();
  // Rows vanish by cascade when a workspace is deleted: re-read the table so its routes (and connections) go too.
  const reloader = setInterval(() => { pa.reload().catch((err) => deps.log.warn({ err }, 'route reload failed')); }, 2000);
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
    access = fileAccessLog(deps.dataDir);
    edge = new Edge({
      routes: pa, workspace: lookup, internalIp, certs, lifecycle: lifecycleHook(deps.workspaces),
      log: deps.log.child({ plane: 'edge' }), access, ...(opts.limits ? { limits: opts.limits } : {}),
    });
    await edge.listen(opts.edgeHttp, opts.edgeHttps);
    live.edgePorts = {
      http: opts.edgeHttp ? (edge.http.address() as AddressInfo).port : null,
      https: opts.edgeHttps && edge.https ? (edge.https.address() as AddressInfo).port : null,
    };
  }
  return {
    edge, certs,
    edgeUrl: opts.edgeHttp && live.edgePorts.http !== null ? url('http', opts.edgeHttp.host, live.edgePorts.http) : null,
    edgeTlsUrl: opts.edgeHttps && live.edgePorts.https !== null ? url('https', opts.edgeHttps.host, live.edgePorts.https) : null,
    async close() {
      clearInterval(reloader);
      clearInterval(verifier);
      await edge?.close();
      certs?.close();
      await access?.close();
    },
  };
}
