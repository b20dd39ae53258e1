/**
 * The composition root: the one place that builds every part of hearthd —
 * the store and its secret, the services, the control-plane API, the
 * data-plane gateway, the public services, the edge and the SSH gateway —
 * and wires them, each given what it needs at construction. `start` brings
 * them up in order (reconcile, network policies, listeners, timers) and
 * `close` takes them down in the reverse order.
 */
import { ActivityLog } from './control/activity.ts';
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { getSetting, setSetting, type Db } from './store/db.ts';
import { openStore } from './store/open.ts';
import type { HostDriver } from './host/host-driver.ts';
import { TokenSigner } from './auth/jwt.ts';
import { randomToken } from './auth/secrets.ts';
import { ApiKeys } from './auth/keys.ts';
import { ConsoleAwareKeys } from './console/keys.ts';
import { ConsoleSessions } from './console/sessions.ts';
import { CONSOLE_PATH, mountConsole } from './console/server.ts';
import { WorkspaceService, DEFAULT_SERVICE_OPTIONS, adminPrincipal } from './control/workspaces/index.ts';
import { sandboxRef } from './control/workspaces/row.ts';
import { NamespaceService } from './control/namespaces.ts';
import { Meter } from './control/metering.ts';
import { UsageReports } from './control/usage.ts';
import { SnapshotService } from './control/snapshots.ts';
import { agentClientFor } from './control/workloads.ts';
import { buildApi, type ApiApp } from './api/server.ts';
import { Gateway } from './gateway/server.ts';
import { publicHost, publicServicesFor, startEdge, type EdgePlane, type PublicPlaneHandle, type PublicPlaneOptions } from './edge/plane.ts';
import { SshGateway, loadHostKey } from './ssh/server.ts';
import { listenForWorkspaces, type InternalListener } from './internal-listener.ts';

export interface Listen {
  host: string;
  port: number;
}

export interface HearthdOptions {
  dataDir: string;
  /** `postgresql://…` for a store shared by several hearthd; absent = SQLite in the data dir. */
  store?: string;
  api: Listen;
  runtime: Listen;
  host: HostDriver;
  log: Logger;
  /** How often the TTL reaper runs. */
  reapIntervalMs?: number;
  fastPathMs?: number;
  /** Shortest idle-sleep delay accepted (contract: 120 s). */
  minIdleSeconds?: number;
  /** How often running time is metered into usage buckets (billing is exact whatever the period). */
  meterIntervalMs?: number;
  /** Edge (preview URLs, custom domains) and SSH gateway listeners; absent = both off. */
  publicPlane?: PublicPlaneOptions;
  /** The image of a create that names none (default debian-12). */
  defaultImage?: string;
  /** At most this many pre-started sandboxes (`--warm-pool N`, control/warm-pool); 0 or absent = off. */
  warmPool?: number;
}

export interface Endpoints {
  api: string;
  runtime: string;
  edge: string | null;
  ssh: string | null;
  /** The edge's HTTPS listener and the preview base domain (issue 7). */
  edge_tls?: string | null;
  preview_domain?: string | null;
  /** The control and data planes as workspaces reach them (src/core/internal-plane.ts); null: not published. */
  api_internal?: string | null;
  runtime_internal?: string | null;
  /** The web console (src/console/). */
  console?: string;
}

/** Everything hearthd is made of, built and wired; nothing listens until `start`. */
export interface Hearth {
  db: Db;
  keys: ApiKeys;
  workspaces: WorkspaceService;
  namespaces: NamespaceService;
  api: ApiApp;
  gateway: Gateway;
  publicPlane: PublicPlaneHandle;
  ssh: SshGateway | null;
  /** Reconcile with the host, load the network policies, listen, start the timers. */
  start(): Promise<Endpoints>;
  close(): Promise<void>;
}

const url = (a: AddressInfo, host: string) => `http://${host.includes(':') ? `[${host}]` : host}:${a.port}`;

/** The store's JWT secret, made on first start. */
async function jwtSecret(db: Db): Promise<string> {
  let secret = await getSetting(db, 'jwt_secret');
  if (!secret) {
    secret = randomToken(48);
    await setSetting(db, 'jwt_secret', secret);
  }
  return secret;
}

export async function compose(opts: HearthdOptions): Promise<Hearth> {
  const { host, log } = opts;
  await fs.mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
  const { db, store } = await openStore(opts.store, opts.dataDir, (message) => log.warn(message));
  log.info({ store: store.kind, at: store.describe }, 'store open');
  const signer = new TokenSigner(await jwtSecret(db));
  // The console's sessions authenticate through the same keys as the API (src/console/keys.ts).
  const consoleSessions = new ConsoleSessions(db);
  const keys = new ConsoleAwareKeys(db, signer, consoleSessions);

  // The namespace service asks for the workspace service only when it acts, so it can be built first
  // and be the workspace service's admission.
  const namespaces = new NamespaceService(db, log.child({ component: 'namespaces' }), () => workspaces);
  const meter = new Meter(db, log.child({ component: 'meter' }), namespaces, { egressBytes: (ws) => (ws.slotIndex === null ? Promise.resolve(null) : host.egressBytes({ slotIndex: ws.slotIndex })) });
  const workspaces: WorkspaceService = new WorkspaceService(db, host, log.child({ component: 'workspaces' }), {
    ...DEFAULT_SERVICE_OPTIONS, ...(opts.fastPathMs !== undefined ? { fastPathMs: opts.fastPathMs } : {}), warmPool: opts.warmPool ?? 0,
  }, { admission: namespaces, meter });
  const usage = new UsageReports(db);
  const snapshots = new SnapshotService(db, host, workspaces, log.child({ component: 'snapshots' }));

  const planeOpts: PublicPlaneOptions = opts.publicPlane ?? { edgeHttp: null, edgeHttps: null, ssh: null };
  const planeDeps = { db, workspaces, host, log, dataDir: opts.dataDir };
  const publicPlane = publicServicesFor(planeDeps, planeOpts);

  // Known once the gateway listens; the API hands it out with runtime tokens.
  let runtimeUrl: string | null = null;
  const api = buildApi({
    workspaces, namespaces, usage, snapshots, meter, agent: agentClientFor(host), publicServices: publicPlane.services,
    signer, keys, log, runtimeUrl: () => runtimeUrl, minIdleSeconds: opts.minIdleSeconds ?? 120,
    activity: new ActivityLog(db, log.child({ component: 'activity' })), ...(opts.defaultImage ? { defaultImage: opts.defaultImage } : {}),
  });
  mountConsole(api.app, { keys, sessions: consoleSessions, runtimeUrl: () => runtimeUrl });
  // The same ApiKeys as the API's: a revocation through one clears what the other believes about issuers.
  const gateway = new Gateway({ workspaces, host, signer, issuers: keys, log: log.child({ plane: 'gateway' }) });

  let ssh: SshGateway | null = null;
  if (planeOpts.ssh) {
    const sshLog = log.child({ plane: 'ssh' });
    ssh = new SshGateway(await loadHostKey(opts.dataDir, sshLog), {
      access: publicPlane.services.ssh, workspace: (id) => workspaces.byId(id), wake: (id) => workspaces.wake(id),
      agentEndpoint: (ws) => workspaces.endpoint(ws),
      log: sshLog, dataDir: opts.dataDir,
    });
  }

  let edge: EdgePlane | null = null;
  let internal: InternalListener | null = null;
  let reaper: NodeJS.Timeout | undefined;
  let reaping = false;

  const startReaper = () => {
    reaper = setInterval(() => {
      if (reaping) return;
      reaping = true;
      workspaces.reapExpired()
        .then(() => workspaces.sleepIdle())
        .catch((err) => log.error({ err }, 'reaper failed'))
        .finally(() => { reaping = false; });
    }, opts.reapIntervalMs ?? 1000);
    reaper.unref();
  };

  return {
    db, keys, workspaces, namespaces, api, gateway, publicPlane, ssh,

    async start() {
      let t0 = performance.now();
      const reconciled = await workspaces.reconcile();
      log.info({ reconciled, ms: Math.round(performance.now() - t0) }, 'reconciled the store with the host');
      // The firewall's per-workspace policies, exactly the store's (no duplicates, no gaps).
      t0 = performance.now();
      await host.syncNetwork([...(await workspaces.list(adminPrincipal, { page: 1, limit: 1_000_000 })).workspaces.filter((w) => w.slotIndex !== null).map(sandboxRef), ...workspaces.poolRefs()]);
      log.info({ ms: Math.round(performance.now() - t0) }, 'network policies in place');
      await api.app.listen({ host: opts.api.host, port: opts.api.port });
      await new Promise<void>((resolve, reject) => {
        gateway.server.once('error', reject);
        gateway.server.listen(opts.runtime.port, opts.runtime.host, () => resolve());
      });
      runtimeUrl = url(gateway.server.address() as AddressInfo, opts.runtime.host);
      internal = await listenForWorkspaces(host, api, gateway, log);
      edge = await startEdge(planeDeps, planeOpts, publicPlane);
      if (ssh && planeOpts.ssh) {
        await ssh.listen(planeOpts.ssh.host, planeOpts.ssh.port);
        publicPlane.live.ssh = { host: publicHost(planeOpts.ssh.host), port: ssh.address().port };
      }
      const sshLive = publicPlane.live.ssh;
      startReaper();
      meter.start(opts.meterIntervalMs ?? 5000);
      return {
        api: url(api.app.server.address() as AddressInfo, opts.api.host), runtime: runtimeUrl, edge: edge.edgeUrl,
        ssh: sshLive ? `ssh://${sshLive.host}:${sshLive.port}` : null,
        edge_tls: edge.edgeTlsUrl, preview_domain: publicPlane.services.publicAccess.opts.previewDomain,
        api_internal: internal?.urls.api_internal ?? null, runtime_internal: internal?.urls.runtime_internal ?? null,
        console: `${url(api.app.server.address() as AddressInfo, opts.api.host)}${CONSOLE_PATH}/`,
      };
    },

    async close() {
      clearInterval(reaper);
      meter.stop();
      await edge?.close();
      await internal?.close();
      await ssh?.close();
      await api.app.close();
      await gateway.close();
      await workspaces.drain();
      await workspaces.closePool();
      await host.close();
      await db.destroy();
    },
  };
}
