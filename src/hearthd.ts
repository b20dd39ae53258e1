/**
 * hearthd: one process, several listeners (control plane, data-plane
 * gateway; edge and SSH later). Wires the store, the host, the services and
 * the servers, and owns their start and orderly stop.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { openSqlite, getSetting, setSetting, type Db } from './store/db.ts';
import { TokenSigner } from './auth/jwt.ts';
import { randomToken } from './auth/secrets.ts';
import { ApiKeys, type NewKey } from './auth/keys.ts';
import { agentClientFor } from './control/workloads.ts';
import { WorkspaceService, DEFAULT_SERVICE_OPTIONS, adminPrincipal } from './control/workspaces.ts';
import { sandboxRef } from './control/workspace-row.ts';
import { buildApi, type ApiApp } from './api/server.ts';
import { Gateway } from './gateway/server.ts';
import { NamespaceService } from './control/namespaces.ts';
import { Meter } from './control/metering.ts';
import { UsageReports } from './control/usage.ts';
import { SnapshotService } from './control/snapshots.ts';
import type { HostDriver } from './host/host-driver.ts';
import { publicServicesFor, startPublicPlane, type PublicPlane, type PublicPlaneOptions } from './edge/plane.ts';

export interface Listen {
  host: string;
  port: number;
}

export interface HearthdOptions {
  dataDir: string;
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
}

export interface Endpoints {
  api: string;
  runtime: string;
  edge: string | null;
  ssh: string | null;
  /** The edge's HTTPS listener and the preview base domain (issue 7). */
  edge_tls?: string | null;
  preview_domain?: string | null;
}

export class Hearthd {
  private reaper: NodeJS.Timeout | undefined;
  private meter: Meter | null = null;
  private reaping = false;
  endpoints: Endpoints | null = null;
  publicPlane: PublicPlane | null = null;

  private constructor(
    readonly db: Db,
    readonly workspaces: WorkspaceService,
    readonly api: ApiApp,
    readonly gateway: Gateway,
    private readonly keys: ApiKeys,
    private readonly opts: HearthdOptions,
  ) {}

  static async open(opts: HearthdOptions): Promise<Hearthd> {
    await fs.mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
    const db = await openSqlite(path.join(opts.dataDir, 'hearth.db'));
    let secret = await getSetting(db, 'jwt_secret');
    if (!secret) {
      secret = randomToken(48);
      await setSetting(db, 'jwt_secret', secret);
    }
    const signer = new TokenSigner(secret);
    const namespaces = new NamespaceService(db, opts.log.child({ component: 'namespaces' }), () => workspaces);
    const meter = new Meter(db, opts.log.child({ component: 'meter' }), namespaces, { egressBytes: (ws) => (ws.slotIndex === null ? Promise.resolve(null) : opts.host.egressBytes({ slotIndex: ws.slotIndex })) });
    const workspaces: WorkspaceService = new WorkspaceService(db, opts.host, opts.log.child({ component: 'workspaces' }), {
      ...DEFAULT_SERVICE_OPTIONS, ...(opts.fastPathMs !== undefined ? { fastPathMs: opts.fastPathMs } : {}),
    }, { admission: namespaces, meter });
    const usage = new UsageReports(db);
    let runtimeUrl: string | null = null;
    const planeOpts: PublicPlaneOptions = opts.publicPlane ?? { edgeHttp: null, edgeHttps: null, ssh: null };
    const planeDeps = { db, workspaces, host: opts.host, log: opts.log, dataDir: opts.dataDir };
    const publicPlane = publicServicesFor(planeDeps, planeOpts);
    const snapshots = new SnapshotService(db, opts.host, workspaces, opts.log.child({ component: 'snapshots' }));
    const keys = new ApiKeys(db, signer);
    const api = buildApi({ workspaces, namespaces, usage, snapshots, meter, agent: agentClientFor(opts.host), signer, keys, log: opts.log, runtimeUrl: () => runtimeUrl, publicServices: publicPlane.services, minIdleSeconds: opts.minIdleSeconds ?? 120 });
    const gateway = new Gateway({ workspaces, host: opts.host, signer, log: opts.log.child({ plane: 'gateway' }) });
    const d = new Hearthd(db, workspaces, api, gateway, keys, opts);
    d.meter = meter;
    let t0 = performance.now();
    const reconciled = await workspaces.reconcile();
    opts.log.info({ reconciled, ms: Math.round(performance.now() - t0) }, 'reconciled the store with the host');
    // The firewall's per-workspace policies, exactly the store's (no duplicates, no gaps).
    t0 = performance.now();
    await opts.host.syncNetwork((await workspaces.list(adminPrincipal, { page: 1, limit: 1_000_000 })).workspaces.filter((w) => w.slotIndex !== null).map(sandboxRef));
    opts.log.info({ ms: Math.round(performance.now() - t0) }, 'network policies in place');
    await api.app.listen({ host: opts.api.host, port: opts.api.port });
    await new Promise<void>((resolve, reject) => {
      gateway.server.once('error', reject);
      gateway.server.listen(opts.runtime.port, opts.runtime.host, () => resolve());
    });
    const apiAddr = api.app.server.address() as AddressInfo;
    const rtAddr = gateway.server.address() as AddressInfo;
    const url = (a: AddressInfo, host: string) => `http://${host.includes(':') ? `[${host}]` : host}:${a.port}`;
    runtimeUrl = url(rtAddr, opts.runtime.host);
    d.publicPlane = await startPublicPlane(planeDeps, planeOpts, publicPlane);
    d.endpoints = {
      api: url(apiAddr, opts.api.host), runtime: runtimeUrl, edge: d.publicPlane.edgeUrl, ssh: d.publicPlane.sshUrl,
      edge_tls: d.publicPlane.edgeTlsUrl, preview_domain: publicPlane.services.publicAccess.opts.previewDomain,
    };
    d.startReaper();
    meter.start(opts.meterIntervalMs ?? 5000);
    return d;
  }

  /** On first start: the admin API key. Returns null when one exists already. */
  async ensureAdminKey(): Promise<NewKey | null> {
    return this.keys.ensureAdmin();
  }

  private startReaper(): void {
    const every = this.opts.reapIntervalMs ?? 1000;
    this.reaper = setInterval(() => {
      if (this.reaping) return;
      this.reaping = true;
      this.workspaces.reapExpired()
        .then(() => this.workspaces.sleepIdle())
        .catch((err) => this.opts.log.error({ err }, 'reaper failed'))
        .finally(() => { this.reaping = false; });
    }, every);
    this.reaper.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.reaper);
    this.meter?.stop();
    await this.publicPlane?.close();
    await this.api.app.close();
    await this.gateway.close();
    await this.workspaces.drain();
    await this.opts.host.close();
    await this.db.destroy();
  }
}
