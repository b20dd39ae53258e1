/**
 * hearthd's own backend behind HAProxy (src/edge/haproxy-config.ts): every
 * request HAProxy does not send straight to a workspace arrives here, over a
 * Unix socket in the data dir, with X-Forwarded-* already set by HAProxy.
 * It
 *
 *   1. answers ACME HTTP-01 challenges (HTTP only) before anything else;
 *   2. finds the route by Host (unknown → 404 page, pending custom domain →
 *      404 saying so, never another workspace);
 *   3. wakes a sleeping workspace (the wake hook; 503 + Retry-After if it
 *      does not come up within the wake budget) and tells the data path, so
 *      HAProxy routes the next requests itself;
 *   4. hands this one request on to `<internal ip>:<port>` (and the
 *      WebSocket upgrade, piped raw), or answers 502 naming the port when
 *      nothing listens — HAProxy redispatches a refused connection here.
 *
 * Connections it carries for a route are tracked under the route and cut
 * when the route goes (revoke, workspace deleted), like HAProxy's own.
 */
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { EdgeRoute } from '../control/public-access.ts';
import type { Workspace } from '../control/workspaces/row.ts';
import type { CertManager } from './certs.ts';
import { edgePageHtml, edgePageRaw, type EdgePage } from './pages.ts';
import { normalizeHost } from '../core/hostnames.ts';

export interface FallbackLimits {
  /** Time for the workspace to start answering (status line and headers). */
  upstreamTimeoutMs: number;
  /** How long a request waits for a sleeping workspace to wake before 503 + Retry-After. */
  wakeBudgetMs: number;
}

export const DEFAULT_FALLBACK_LIMITS: FallbackLimits = { upstreamTimeoutMs: 60_000, wakeBudgetMs: 30_000 };

/**
 * How the edge meets the workspace lifecycle. `wake` runs for a request to
 * a workspace that is not running and returns the workspace as it is
 * afterwards (a sleeping one is started and awaited; a stopped one stays
 * stopped → 503); `touch` records HTTP activity (§6: edge traffic counts as
 * activity for idle sleep). hearthd wires both to the workspace service.
 */
export interface EdgeLifecycle {
  wake(ws: Workspace): Promise<Workspace | null>;
  touch(workspaceId: string): void;
}

export interface FallbackDeps {
  routes: {
    route(hostname: string): EdgeRoute | undefined;
    /** A custom hostname asked for but not routed because its domain's ownership is not proven yet. */
    pending?(hostname: string): boolean;
    onRoutesRemoved(fn: (removed: EdgeRoute[]) => void): () => void;
  };
  workspace(id: string): Promise<Workspace | null>;
  internalIp(ws: Workspace): string | null;
  certs: CertManager | null;
  lifecycle: EdgeLifecycle;
  /** A request for a running workspace reached hearthd (woken now, or HAProxy's map lags): bring HAProxy up to date. */
  onRunning(ws: Workspace): void;
  log: Logger;
  limits?: Partial<FallbackLimits>;
}
/** Hop-by-hop headers (RFC 9110 §7.6.1); never forwarded in either direction. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

const routeKey = (r: { workspaceId: string; port: number }) => `${r.workspaceId}:${r.port}`;

class EdgeReject extends Error {
  constructor(readonly status: EdgePage, readonly detail?: string, readonly headers: Record<string, string> = {}) {
    super(`edge ${status}`);
  }
}

interface Target {
  route: EdgeRoute;
  ws: Workspace;
  ip: string;
  key: string;
  /** This request woke the workspace: its server may need a moment to listen again. */
  woke: boolean;
}

/** After a wake, a refused connection is retried this long (bodyless requests only) while the app starts listening. */
const WAKE_LISTEN_GRACE_MS = 10_000;

export class EdgeFallback {
  readonly server: http.Server;
  readonly limits: FallbackLimits;
  private readonly sockets = new Map<string, Set<Duplex>>();
  private readonly agents = new Map<string, http.Agent>();
  private readonly unsubscribe: () => void;

  constructor(private readonly deps: FallbackDeps) {
    this.limits = { ...DEFAULT_FALLBACK_LIMITS, ...deps.limits };
    // HAProxy enforces the client-facing limits; only it can reach this socket.
    this.server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 120_000 }, (req, res) => this.onRequest(req, res));
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      this.onUpgrade(req, socket, head).catch((err) => this.rejectSocket(socket, err));
    });
    this.server.on('clientError', (_err, socket: Duplex) => socket.destroy());
    this.unsubscribe = deps.routes.onRoutesRemoved((removed) => { for (const r of removed) this.cut(routeKey(r)); });
  }

  /** Destroy every connection carrying traffic for a route (revoke, workspace gone). */
  cut(key: string): void {
    const set = this.sockets.get(key);
    if (set) for (const s of set) s.destroy();
    this.sockets.delete(key);
    this.agents.get(key)?.destroy();
    this.agents.delete(key);
  }

  private track(key: string, s: Duplex): void {
    let set = this.sockets.get(key);
    if (!set) this.sockets.set(key, (set = new Set()));
    if (set.has(s)) return;
    set.add(s);
    s.once('close', () => {
      const cur = this.sockets.get(key);
      cur?.delete(s);
      if (cur && cur.size === 0) this.sockets.delete(key);
    });
  }

  /**
   * Forget the keep-alive pools of a workspace whose sandbox was restarted
   * (a wake): its pooled sockets point at connections the new sandbox never
   * had, and the first reuse would get a reset.
   */
  private dropPools(workspaceId: string): void {
    for (const [key, agent] of this.agents) {
      if (!key.startsWith(`${workspaceId}:`)) continue;
      agent.destroy();
      this.agents.delete(key);
    }
  }

  private agentFor(key: string): http.Agent {
    let a = this.agents.get(key);
    if (!a) this.agents.set(key, (a = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16 })));
    return a;
  }

  private async resolve(req: http.IncomingMessage): Promise<Target> {
    const host = normalizeHost(req.headers.host);
    const route = host ? this.deps.routes.route(host) : undefined;
    if (!route && host && this.deps.routes.pending?.(host)) {
      throw new EdgeReject(404, `${host} is not routed yet: its owner has not proven control of the domain (a DNS TXT record at _hearth-challenge.<domain>, see the domain's verification in the API).`, { 'x-hearth-domain': 'pending-verification' });
    }
    if (!route) throw new EdgeReject(404);
    const key = routeKey(route);
    let ws = await this.deps.workspace(route.workspaceId);
    if (!ws) throw new EdgeReject(404);
    const woke = ws.state !== 'running';
    if (ws.state !== 'running') {
      // §6: past the wake budget the visitor gets 503 + Retry-After; the wake goes on.
      let timer: NodeJS.Timeout | undefined;
      const budget = new Promise<null>((r) => { timer = setTimeout(() => r(null), this.limits.wakeBudgetMs); });
      ws = (await Promise.race([this.deps.lifecycle.wake(ws).catch(() => null), budget])) ?? ws;
      clearTimeout(timer);
      if (ws.state !== 'running') throw new EdgeReject(503, `The workspace is ${ws.state}.`, { 'retry-after': '1' });
      this.dropPools(ws.id);
    }
    const ip = this.deps.internalIp(ws);
    if (!ip) throw new EdgeReject(503, 'The workspace has no network address.', { 'retry-after': '1' });
    this.deps.lifecycle.touch(ws.id);
    this.deps.onRunning(ws);
    return { route, ws, ip, key, woke };
  }

  /** HAProxy set X-Forwarded-*; only hop-by-hop headers are dropped. */
  private forwardHeaders(req: http.IncomingMessage): http.OutgoingHttpHeaders {
    const drop = new Set(HOP);
    for (const t of String(req.headers.connection ?? '').split(',')) if (t.trim()) drop.add(t.trim().toLowerCase());
    const out: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !drop.has(k)) out[k] = v;
    return out;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const secure = req.headers['x-forwarded-proto'] === 'https';
    // ACME HTTP-01, answered by hearthd itself for any host.
    if (!secure && req.url?.startsWith('/.well-known/acme-challenge/')) {
      const token = req.url.slice('/.well-known/acme-challenge/'.length);
      const answer = this.deps.certs?.challengeResponse(token);
      if (answer) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(answer) });
        res.end(answer);
        return;
      }
    }
    const bodyless = req.headers['transfer-encoding'] === undefined && !(Number(req.headers['content-length']) > 0);
    let wokeAt = 0;
    let staleRetried = false;
    let current: http.ClientRequest | null = null;
    req.on('aborted', () => current?.destroy());
    res.once('close', () => { if (!res.writableFinished) current?.destroy(); });
    const send = (t: Target) => {
      const up = http.request({
        host: t.ip, port: t.route.port, method: req.method, path: req.url, headers: this.forwardHeaders(req),
        agent: this.agentFor(t.key), timeout: this.limits.upstreamTimeoutMs,
      });
      current = up;
      up.on('socket', (s) => { s.setNoDelay(true); this.track(t.key, s); });
      up.on('timeout', () => up.destroy(Object.assign(new Error('upstream timeout'), { code: 'ETIMEDOUT' })));
      up.on('response', (ur) => {
        up.setTimeout(0); // headers arrived: streaming responses may take as long as they take
        const headers: http.OutgoingHttpHeaders = {};
        const drop = new Set(HOP);
        for (const tkn of String(ur.headers.connection ?? '').split(',')) if (tkn.trim()) drop.add(tkn.trim().toLowerCase());
        for (const [k, v] of Object.entries(ur.headers)) if (v !== undefined && !drop.has(k)) headers[k] = v;
        res.writeHead(ur.statusCode ?? 502, ur.statusMessage, headers);
        ur.pipe(res);
        res.once('close', () => { if (!ur.complete) ur.destroy(); });
      });
      up.on('error', (err: NodeJS.ErrnoException) => {
        if (res.headersSent) { res.destroy(); return; }
        const code = err.code ?? '';
        // A pooled keep-alive socket the workspace closed meanwhile: the request never reached it, send it once more on a fresh one.
        if (code === 'ECONNRESET' && up.reusedSocket && bodyless && !staleRetried && !res.destroyed) {
          staleRetried = true;
          send(t);
          return;
        }
        // Just woken, the app may still be starting: refused (never reached it), or reset while it comes up (safe to repeat for GET/HEAD).
        const starting = code === 'ECONNREFUSED' || (code === 'ECONNRESET' && (req.method === 'GET' || req.method === 'HEAD'));
        if (starting && t.woke && bodyless && !res.destroyed && Date.now() - wokeAt < WAKE_LISTEN_GRACE_MS) {
          setTimeout(() => { if (!res.destroyed) send(t); }, 100);
          return;
        }
        if (code === 'ETIMEDOUT') this.page(res, 504, `No answer from port ${t.route.port} within ${Math.round(this.limits.upstreamTimeoutMs / 1000)} s.`);
        else if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE') this.page(res, 502, `Connection to port ${t.route.port} ${code === 'ECONNREFUSED' ? 'refused' : 'closed'}.`);
        else this.page(res, 502, `Could not reach port ${t.route.port} (${code || err.message}).`);
      });
      if (bodyless) up.end();
      else req.pipe(up);
    };
    this.resolve(req).then((t) => {
      this.track(t.key, req.socket);
      wokeAt = Date.now();
      send(t);
    }, (err: unknown) => {
      req.resume();
      if (err instanceof EdgeReject) this.page(res, err.status, err.detail, err.headers);
      else {
        this.deps.log.error({ err, host: req.headers.host }, 'edge request failed');
        this.page(res, 502);
      }
    });
  }

  private page(res: http.ServerResponse, status: EdgePage, detail?: string, headers: Record<string, string> = {}): void {
    if (res.headersSent) { res.destroy(); return; }
    const body = edgePageHtml(status, detail);
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
    res.end(body);
  }

  private async onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const t = await this.resolve(req);
    const upstream = net.connect({ host: t.ip, port: t.route.port });
    this.track(t.key, socket);
    this.track(t.key, upstream);
    upstream.setNoDelay(true);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      const headers = this.forwardHeaders(req);
      headers.connection = 'Upgrade';
      headers.upgrade = req.headers.upgrade ?? 'websocket';
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (const [k, v] of Object.entries(headers)) for (const value of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${String(value)}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    const close = () => { upstream.destroy(); socket.destroy(); };
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && socket.writable) socket.end(edgePageRaw(502, `Connection to port ${t.route.port} ${err.code === 'ECONNREFUSED' ? 'refused' : 'failed'}.`));
      close();
    });
    upstream.on('close', close);
    socket.on('close', () => upstream.destroy());
  }

  private rejectSocket(socket: Duplex, err: unknown): void {
    if (err instanceof EdgeReject) {
      if (socket.writable) socket.end(edgePageRaw(err.status, err.detail, err.headers));
    } else {
      this.deps.log.error({ err }, 'edge upgrade failed');
      if (socket.writable) socket.end(edgePageRaw(502));
    }
    socket.destroy();
  }

  /** Listen on a Unix socket only HAProxy (same user) can reach. */
  async listen(socketPath: string): Promise<void> {
    // Its directory may not exist yet (an edge without TLS keeps no certificates there).
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
    fs.rmSync(socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(socketPath, () => { this.server.off('error', reject); resolve(); });
    });
    fs.chmodSync(socketPath, 0o600);
  }

  async close(): Promise<void> {
    this.unsubscribe();
    for (const key of [...this.sockets.keys()]) this.cut(key);
    for (const a of this.agents.values()) a.destroy();
    await new Promise<void>((r) => {
      if (!this.server.listening) { r(); return; }
      this.server.closeAllConnections();
      this.server.close(() => r());
    });
  }
}
