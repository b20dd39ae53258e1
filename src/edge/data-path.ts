/**
 * The edge's data path: HAProxy (src/host/proxy/) kept equal to the route
 * table, the workspaces' states and the certificates, by hearthd.
 *
 *   - desired state = servers (one per routed workspace port, its internal
 *     address) + hosts (hostname → server, for running workspaces only) +
 *     certificate files; computed from the store in one pass;
 *   - at start the files are rendered whole from it (src/edge/haproxy-config.ts)
 *     and HAProxy started on them — or a HAProxy left running by an earlier
 *     hearthd is adopted and corrected through its runtime API;
 *   - later changes are diffs applied through the runtime API, no reload:
 *     `add/set/del map`, `add server`/`enable server`, and for a route that
 *     goes: `del map`, `disable server`, `shutdown sessions server` (open
 *     connections cut now). The server is then kept in maintenance, never
 *     `del server`ed: HAProxy 2.6.12 (Debian 12) crashes on a later request
 *     after deleting a server that had carried keep-alive traffic (seen here,
 *     reproduced outside Hearth). A route exposed again reuses its server;
 *     the next restart drops the rest (the files list only live servers);
 *     certificates by `new/set/commit ssl cert` and `add/del ssl crt-list`;
 *   - HAProxy found dead is started again from freshly rendered files.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { HaproxyProcess } from '../host/proxy/haproxy.ts';
import { RuntimeApiError } from '../host/proxy/runtime-api.ts';
import type { EdgeRoute } from '../control/public-access.ts';
import type { CertManager } from './certs.ts';
import { receiveAccessLog, type AccessLog } from './access-log.ts';
import { DEFAULT_HAPROXY_LIMITS, renderHaproxy, routeServerName, ROUTES_BACKEND, type HaproxyLimits, type HaproxySpec } from './haproxy-config.ts';

export interface Listen {
  host: string;
  port: number;
}

/** What the data path needs to know of a workspace. */
export interface RouteTarget {
  running: boolean;
  ip: string | null;
}

export interface DataPathDeps {
  /** The data dir's edge/haproxy. */
  dir: string;
  /** The access log HAProxy's log lines are appended to (received by hearthd over UDP on loopback). */
  accessLog: AccessLog;
  fallbackSocket: string;
  http: Listen | null;
  https: Listen | null;
  limits?: Partial<HaproxyLimits>;
  routes: () => EdgeRoute[];
  /** Every workspace that has routes, in one query. */
  targets: (workspaceIds: string[]) => Promise<Map<string, RouteTarget>>;
  certs: CertManager | null;
  log: Logger;
  binary?: string;
  /** Traffic HAProxy carried to a workspace (§6: edge traffic is activity for idle sleep). */
  touch?: (workspaceId: string) => void;
  /** How often HAProxy's per-server counters are read for `touch` (ms). */
  activityEveryMs?: number;
}

interface Desired {
  servers: Map<string, { ip: string; port: number }>;
  hosts: Map<string, string>;
}

const sameListen = (want: Listen | null, had: Listen | null) =>
  want === null ? had === null : had !== null && want.host === had.host && (want.port === 0 || want.port === had.port);

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export class EdgeDataPath {
  readonly proc: HaproxyProcess;
  readonly limits: HaproxyLimits;
  /** Bound addresses (a requested port 0 resolved). */
  http: Listen | null = null;
  https: Listen | null = null;
  private applied: Desired = { servers: new Map(), hosts: new Map() };
  /** Servers of routes that went, kept in maintenance (never deleted: see the header) until HAProxy restarts. */
  private draining = new Set<string>();
  private certFiles = new Map<string, string>();
  private queue: Promise<unknown> = Promise.resolve();
  private up = false;
  private closed = false;
  private unsubscribeCerts: (() => void) | undefined;
  private logReceiver: { port: number; close(): Promise<void> } | null = null;
  /** Restarts after HAProxy was found dead (tests, doctor). */
  restarts = 0;
  private activityTimer: NodeJS.Timeout | undefined;
  private sessionsSeen = new Map<string, number>();

  constructor(private readonly deps: DataPathDeps) {
    this.limits = { ...DEFAULT_HAPROXY_LIMITS, ...deps.limits };
    this.proc = new HaproxyProcess({
      dir: deps.dir, ...(deps.binary ? { binary: deps.binary } : {}),
      onExit: (pid) => { void this.restart(pid); },
    });
  }

  private get mapFile(): string { return path.join(this.deps.dir, 'hosts.map'); }
  private get crtList(): string { return path.join(this.deps.dir, 'crt-list'); }

  /** One change at a time: syncs, certificate pushes and restarts never interleave on the socket. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async desired(): Promise<Desired> {
    const routes = this.deps.routes();
    const targets = await this.deps.targets([...new Set(routes.map((r) => r.workspaceId))]);
    const out: Desired = { servers: new Map(), hosts: new Map() };
    for (const r of routes) {
      const t = targets.get(r.workspaceId);
      if (!t?.ip) continue;
      const name = routeServerName(r.workspaceId, r.port);
      out.servers.set(name, { ip: t.ip, port: r.port });
      if (t.running) out.hosts.set(r.hostname, name);
    }
    return out;
  }

  private spec(d: Desired): HaproxySpec {
    const certs = this.deps.certs?.files() ?? [];
    return {
      dir: this.deps.dir, fallbackSocket: this.deps.fallbackSocket, logPort: this.logReceiver?.port ?? 0, http: this.http, https: this.https, limits: this.limits,
      servers: [...d.servers].map(([name, s]) => ({ name, ...s })),
      hosts: [...d.hosts],
      certFiles: certs.map((c) => c.file),
    };
  }

  private writeFiles(d: Desired): void {
    fs.mkdirSync(path.join(this.deps.dir, 'errors'), { recursive: true, mode: 0o700 });
    const files = renderHaproxy(this.spec(d));
    for (const [name, text] of Object.entries(files.errors)) fs.writeFileSync(path.join(this.deps.dir, 'errors', name), text);
    for (const name of ['hosts.map', 'crt-list', 'haproxy.cfg'] as const) {
      fs.writeFileSync(path.join(this.deps.dir, `${name}.tmp`), files[name], { mode: 0o600 });
      fs.renameSync(path.join(this.deps.dir, `${name}.tmp`), path.join(this.deps.dir, name));
    }
    fs.writeFileSync(path.join(this.deps.dir, 'listen.json'), JSON.stringify({ http: this.http, https: this.https, logPort: this.logReceiver?.port }));
  }

  /** Adopt a running HAProxy serving the same listeners, or start one. */
  async start(): Promise<void> {
    fs.mkdirSync(this.deps.dir, { recursive: true, mode: 0o700 });
    if (this.deps.https && !this.deps.certs) throw new Error('the edge HTTPS listener needs a certificate manager');
    this.unsubscribeCerts = this.deps.certs?.onChange((hostname, file, pem) => {
      void this.serial(() => this.pushCert(hostname, file, pem)).catch((err) => this.deps.log.warn({ err, hostname }, 'could not update a certificate in haproxy'));
    });
    await this.serial(async () => {
      const pid = await this.proc.findRunning();
      let had: { http: Listen | null; https: Listen | null; logPort?: number } | null = null;
      try { had = JSON.parse(fs.readFileSync(path.join(this.deps.dir, 'listen.json'), 'utf8')); } catch { /* first start */ }
      // The running HAProxy sends its log lines to the port it was started with: take that one again.
      if (had?.logPort) this.logReceiver = await receiveAccessLog(this.deps.accessLog, had.logPort).catch(() => null);
      const logOk = this.logReceiver !== null;
      this.logReceiver ??= await receiveAccessLog(this.deps.accessLog, 0);
      if (pid !== null && had && logOk && sameListen(this.deps.http, had.http) && sameListen(this.deps.https, had.https)) {
        this.http = had.http;
        this.https = had.https;
        this.proc.adopt(pid);
        await this.readBack();
        this.up = true;
        this.deps.log.info({ pid }, 'adopted the running haproxy');
        await this.applyDiff(await this.desired());
        this.writeFiles(this.applied);
        return;
      }
      if (pid !== null) {
        this.proc.adopt(pid);
        await this.proc.stop();
      }
      this.http = this.deps.http && { host: this.deps.http.host, port: this.deps.http.port || await freePort(this.deps.http.host) };
      this.https = this.deps.https && { host: this.deps.https.host, port: this.deps.https.port || await freePort(this.deps.https.host) };
      await this.startFresh();
    });
    if (this.deps.touch) {
      this.activityTimer = setInterval(() => { void this.readActivity().catch(() => undefined); }, this.deps.activityEveryMs ?? 5000);
      this.activityTimer.unref();
    }
  }

  /**
   * Requests HAProxy routes itself never reach hearthd: its per-server
   * counters (total sessions, current sessions) say which workspaces had
   * traffic since the last look, and each of those is touched.
   */
  async readActivity(): Promise<void> {
    if (!this.up || !this.deps.touch) return;
    const csv = (await this.proc.api.raw(`show stat ${ROUTES_BACKEND} 4 -1`)).split('\n');
    const header = (csv[0] ?? '').replace(/^# /, '').split(',');
    const [name, total, current] = ['svname', 'stot', 'scur'].map((c) => header.indexOf(c));
    if (name! < 0 || total! < 0 || current! < 0) return;
    for (const line of csv.slice(1)) {
      const f = line.split(',');
      const server = f[name!];
      if (!server || server === 'hearthd' || !server.includes('.')) continue;
      const stot = Number(f[total!]);
      const busy = Number(f[current!]) > 0 || stot > (this.sessionsSeen.get(server) ?? stot);
      this.sessionsSeen.set(server, stot);
      if (busy) this.deps.touch(server.slice(0, server.lastIndexOf('.')));
    }
  }

  private async startFresh(): Promise<void> {
    const d = await this.desired();
    this.writeFiles(d);
    await this.proc.start();
    this.applied = d;
    this.draining.clear();
    this.sessionsSeen.clear();
    this.certFiles = new Map((this.deps.certs?.files() ?? []).map((c) => [c.hostname, c.file]));
    this.up = true;
  }

  private async restart(pid: number): Promise<void> {
    if (this.closed) return;
    this.up = false;
    this.restarts++;
    this.deps.log.warn({ pid }, 'haproxy is gone: starting it again with every route');
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await this.serial(() => this.startFresh());
        return;
      } catch (err) {
        this.deps.log.error({ err }, 'haproxy did not start');
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** attempt)));
      }
    }
  }

  /** What an adopted HAProxy holds: its map, its route servers, its certificates. */
  private async readBack(): Promise<void> {
    await this.readBackRoutes();
    const api = this.proc.api;
    // Certificates are pushed again whole: cheap, and an adopted process may predate a renewal.
    this.certFiles = new Map();
    const loaded = new Set((await api.raw(`show ssl crt-list ${this.crtList}`)).split('\n').map((l) => l.trim().split(/\s+/)[0]).filter((x): x is string => !!x && !x.startsWith('#')));
    for (const c of this.deps.certs?.files() ?? []) {
      if (loaded.has(c.file)) this.certFiles.set(c.hostname, c.file);
      await this.pushCert(c.hostname, c.file, c.pem);
    }
  }

  /** The map and route servers HAProxy really holds: the base of the next diff (after adoption, or a refused command). */
  private async readBackRoutes(): Promise<void> {
    const api = this.proc.api;
    const hosts = new Map<string, string>();
    for (const line of (await api.raw(`show map ${this.mapFile}`)).split('\n')) {
      const [, key, value] = line.trim().split(/\s+/);
      if (key && value) hosts.set(key, value);
    }
    const servers = new Map<string, { ip: string; port: number }>();
    this.draining.clear();
    for (const line of (await api.raw(`show servers state ${ROUTES_BACKEND}`)).split('\n')) {
      const f = line.trim().split(/\s+/);
      // be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state … srv_port is field 18.
      if (f.length < 19 || f[1] !== ROUTES_BACKEND || f[3] === 'hearthd') continue;
      const name = f[3]!;
      if ((Number(f[6]) & 1) === 1) this.draining.add(name);
      else servers.set(name, { ip: f[4]!, port: Number(f[18]) });
    }
    this.applied = { servers, hosts };
  }

  /** Bring HAProxy up to date with the store; resolves once applied (PublicAccessService awaits it after each change). */
  sync(): Promise<void> {
    return this.serial(async () => {
      if (!this.up || this.closed) return;
      await this.applyDiff(await this.desired());
    });
  }

  private async applyDiff(d: Desired): Promise<void> {
    const api = this.proc.api;
    const before: string[] = [];
    const servers: string[] = [];
    const maps: string[] = [];
    const gone: string[] = [];
    for (const [host, name] of this.applied.hosts) if (d.hosts.get(host) !== name && !d.hosts.has(host)) before.push(`del map ${this.mapFile} ${host}`);
    for (const [name, s] of d.servers) {
      const had = this.applied.servers.get(name);
      const srv = `${ROUTES_BACKEND}/${name}`;
      if (this.draining.has(name)) {
        servers.push(`set server ${srv} addr ${s.ip} port ${s.port}`, `enable server ${srv}`);
        this.draining.delete(name);
      } else if (!had) {
        servers.push(`add server ${srv} ${s.ip}:${s.port} weight 0`, `enable server ${srv}`);
      } else if (had.ip !== s.ip || had.port !== s.port) {
        // A moved workspace: connections to its old address are cut with the move.
        servers.push(`set server ${srv} addr ${s.ip} port ${s.port}`, `shutdown sessions server ${srv}`);
      }
    }
    for (const [host, name] of d.hosts) {
      const had = this.applied.hosts.get(host);
      if (had === name) continue;
      maps.push(had === undefined ? `add map ${this.mapFile} ${host} ${name}` : `set map ${this.mapFile} ${host} ${name}`);
    }
    for (const name of this.applied.servers.keys()) if (!d.servers.has(name)) gone.push(name);
    // One round trip, run in order: names leave the map before their server goes, and a server exists before a name points at it.
    const cut = gone.flatMap((name) => [`disable server ${ROUTES_BACKEND}/${name}`, `shutdown sessions server ${ROUTES_BACKEND}/${name}`]);
    const all = [...before, ...servers, ...maps, ...cut];
    try {
      if (all.length) await api.run(...all);
    } catch (err) {
      // Part of the batch may have run: diff against what HAProxy really holds next time.
      await this.readBackRoutes().catch(() => undefined);
      throw err;
    }
    for (const name of gone) this.draining.add(name);
    this.applied = d;
  }

  private async pushCert(hostname: string, file: string | null, pem: string | null): Promise<void> {
    if (!this.up) return; // the next start loads it from the files
    const api = this.proc.api;
    const had = this.certFiles.get(hostname);
    if (file === null || pem === null) {
      if (!had) return;
      await api.run(`del ssl crt-list ${this.crtList} ${had}`);
      await api.raw(`del ssl cert ${had}`);
      this.certFiles.delete(hostname);
    } else if (had === file) {
      await api.payload(`set ssl cert ${file}`, pem);
      await api.run(`commit ssl cert ${file}`);
    } else {
      const answer = await api.raw(`new ssl cert ${file}`);
      if (!/New empty certificate store|already exists/i.test(answer)) throw new RuntimeApiError(`new ssl cert ${file}`, answer);
      await api.payload(`set ssl cert ${file}`, pem);
      await api.run(`commit ssl cert ${file}`);
      await api.run(`add ssl crt-list ${this.crtList} ${file}`);
      this.certFiles.set(hostname, file);
    }
    fs.writeFileSync(this.crtList, [...new Set([...(this.deps.certs?.files() ?? []).map((c) => c.file)])].map((f) => `${f}\n`).join(''), { mode: 0o600 });
  }

  /** Stop supervising; with `stopProxy`, stop HAProxy too (an orderly shutdown), else leave it serving. */
  async close(stopProxy = true): Promise<void> {
    this.closed = true;
    clearInterval(this.activityTimer);
    this.unsubscribeCerts?.();
    await this.queue.catch(() => undefined);
    if (stopProxy) await this.proc.stop();
    else this.proc.detach();
    await this.logReceiver?.close();
  }
}
