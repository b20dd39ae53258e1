/**
 * The edge proxy: Hearth's public front door for exposed ports. Two
 * listeners (HTTP and HTTPS with SNI) share one handler that
 *
 *   1. answers ACME HTTP-01 challenges (HTTP only) before anything else;
 *   2. finds the route by Host header (unknown → 404 page, never another
 *      workspace);
 *   3. makes sure the workspace runs (the wake hook; 503 + Retry-After
 *      otherwise);
 *   4. streams the request to `<internal ip>:<port>` over the Hearth bridge
 *      (HTTP/1.1, keep-alive per route, WebSocket upgrades piped raw) with
 *      X-Forwarded-* headers, and the response back unbuffered;
 *   5. writes one access-log line.
 *
 * Every socket that carries traffic for a route is tracked under the route,
 * so revoking it (or deleting its workspace) destroys open connections at
 * once, idle keep-alive and upgraded ones included. Limits: header size
 * (431), header arrival time (slow-loris, 408), body size (413), time to
 * the upstream's response headers (504), idle keep-alive.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { EdgeRoute } from '../control/public-access.ts';
import type { Workspace } from '../control/workspaces/row.ts';
import type { CertManager } from './certs.ts';
import { edgePageHtml, edgePageRaw, type EdgePage } from './pages.ts';
import { normalizeHost } from '../core/hostnames.ts';
import type { AccessLog } from './access-log.ts';

export interface EdgeLimits {
  maxHeaderBytes: number;
  /** Time for a client to send its complete request headers (slow-loris). */
  headersTimeoutMs: number;
  /** Time for a TLS handshake to finish. */
  handshakeTimeoutMs: number;
  maxBodyBytes: number;
  /** Time for the workspace to start answering (status line and headers). */
  upstreamTimeoutMs: number;
  /** An idle keep-alive client connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** How long a request waits for a sleeping workspace to wake before 503 + Retry-After. */
  wakeBudgetMs: number;
}

export const DEFAULT_EDGE_LIMITS: EdgeLimits = {
  maxHeaderBytes: 16 * 1024,
  headersTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  maxBodyBytes: 100 * 1024 * 1024,
  upstreamTimeoutMs: 60_000,
  keepAliveTimeoutMs: 65_000,
  wakeBudgetMs: 30_000,
};

/**
 * How the edge meets the workspace lifecycle. `wake` runs before every
 * proxied request to a workspace that is not running and returns the
 * workspace as it is afterwards (a sleeping one is started and awaited;
 * a stopped one stays stopped → 503); `touch` records HTTP activity (§6:
 * edge traffic counts as activity for idle sleep). hearthd wires both to
 * the workspace service (`wake`, `noteActivity`).
 */
export interface EdgeLifecycle {
  wake(ws: Workspace): Promise<Workspace | null>;
  touch(workspaceId: string): void;
}

export interface EdgeDeps {
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
  log: Logger;
  access: AccessLog;
  limits?: Partial<EdgeLimits>;
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

export class Edge {
  readonly http: http.Server;
  readonly https: https.Server | null;
  readonly limits: EdgeLimits;
  private readonly sockets = new Map<string, Set<Duplex>>();
  private readonly agents = new Map<string, http.Agent>();
  private readonly unsubscribe: () => void;

  constructor(private readonly deps: EdgeDeps) {
    this.limits = { ...DEFAULT_EDGE_LIMITS, ...deps.limits };
    const serverOpts: http.ServerOptions = {
      maxHeaderSize: this.limits.maxHeaderBytes,
      headersTimeout: this.limits.headersTimeoutMs,
      // Bodies may stream for long (uploads); the header timeout is what stops slow-loris.
      requestTimeout: 0,
      keepAliveTimeout: this.limits.keepAliveTimeoutMs,
      // Node checks header/request timeouts on this period (default 30 s): make the limit real.
      connectionsCheckingInterval: 1000,
    };
    this.http = http.createServer(serverOpts, (req, res) => this.onRequest(req, res, false));
    this.wire(this.http, false);
    if (deps.certs) {
      const certs = deps.certs;
      this.https = https.createServer({
        ...serverOpts,
        ...certs.defaultPair(),
        handshakeTimeout: this.limits.handshakeTimeoutMs,
        SNICallback: (servername, cb) => {
          certs.contextFor(normalizeHost(servername) ?? servername).then((ctx) => cb(null, ctx), (err: Error) => cb(err));
        },
      }, (req, res) => this.onRequest(req, res, true));
      this.wire(this.https, true);
      this.https.on('tlsClientError', (_err, socket) => socket.destroy());
    } else {
      this.https = null;
    }
    this.unsubscribe = deps.routes.onRoutesRemoved((removed) => { for (const r of removed) this.cut(routeKey(r)); });
  }

  private wire(server: http.Server, secure: boolean): void {
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      this.onUpgrade(req, socket, head, secure).catch((err) => this.rejectSocket(socket, err));
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      const code = err.code ?? '';
      const status: EdgePage | null = code === 'HPE_HEADER_OVERFLOW' ? 431
        : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408
        : code === 'ECONNRESET' || code === 'EPIPE' ? null : 400;
      if (status && socket.writable && !(socket as net.Socket & { _httpMessage?: unknown })._httpMessage) socket.end(edgePageRaw(status));
      socket.destroy();
      if (status) this.deps.access.write({ status, method: '-', host: '-', path: '-', remote: (socket as net.Socket).remoteAddress ?? '', ms: 0, bytes: 0, secure, error: code });
    });
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

  /** Open connections per route (tests, metrics). */
  openConnections(workspaceId: string, port: number): number {
    return this.sockets.get(routeKey({ workspaceId, port }))?.size ?? 0;
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
    if (!a) this.agents.set(key, (a = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 })));
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
    this.track(key, req.socket);
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
    return { route, ws, ip, key, woke };
  }

  private forwardHeaders(req: http.IncomingMessage, secure: boolean): http.OutgoingHttpHeaders {
    const drop = new Set(HOP);
    for (const t of String(req.headers.connection ?? '').split(',')) if (t.trim()) drop.add(t.trim().toLowerCase());
    const out: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !drop.has(k) && !k.startsWith('x-forwarded-')) out[k] = v;
    const remote = req.socket.remoteAddress ?? '';
    // The edge is the first hop Hearth trusts: a client's own X-Forwarded-* is replaced, not extended.
    out['x-forwarded-for'] = remote;
    out['x-forwarded-proto'] = secure ? 'https' : 'http';
    out['x-forwarded-host'] = req.headers.host ?? '';
    out['x-forwarded-port'] = String(req.socket.localPort ?? '');
    out['x-real-ip'] = remote;
    return out;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse, secure: boolean): void {
    const started = process.hrtime.bigint();
    const host = req.headers.host ?? '';
    let bytes = 0;
    let target: Target | undefined;
    res.once('close', () => {
      this.deps.access.write({
        status: res.statusCode, method: req.method ?? '-', host, path: req.url ?? '-', remote: req.socket.remoteAddress ?? '',
        ms: Number(process.hrtime.bigint() - started) / 1e6, bytes, secure,
        ...(target ? { workspace: target.ws.id, port: target.route.port } : {}),
        ...(res.writableFinished ? {} : { aborted: true }),
      });
    });
    // ACME HTTP-01, answered by the edge itself for any host.
    if (!secure && req.url?.startsWith('/.well-known/acme-challenge/')) {
      const token = req.url.slice('/.well-known/acme-challenge/'.length);
      const answer = this.deps.certs?.challengeResponse(token);
      if (answer) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(answer) });
        res.end(answer);
        return;
      }
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > this.limits.maxBodyBytes) {
      this.page(res, 413);
      req.resume();
      return;
    }
    const bodyless = req.headers['transfer-encoding'] === undefined && !(Number(req.headers['content-length']) > 0);
    let wokeAt = 0;
    let staleRetried = false;
    let current: http.ClientRequest | null = null;
    req.on('aborted', () => current?.destroy());
    res.once('close', () => { if (!res.writableFinished) current?.destroy(); });
    const send = (t: Target) => {
      const up = http.request({
        host: t.ip, port: t.route.port, method: req.method, path: req.url, headers: this.forwardHeaders(req, secure),
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
        // Byte counting costs a listener per chunk: only when the length is not declared.
        const declaredOut = Number(ur.headers['content-length']);
        if (Number.isFinite(declaredOut)) bytes = declaredOut;
        else ur.on('data', (c: Buffer) => { bytes += c.length; });
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
      // Body size limit for chunked bodies (Content-Length was checked above).
      let received = 0;
      if (req.headers['transfer-encoding'] !== undefined) req.on('data', (c: Buffer) => {
        received += c.length;
        if (received > this.limits.maxBodyBytes) {
          up.destroy();
          if (!res.headersSent) this.page(res, 413);
          else res.destroy();
          req.socket.destroy();
        }
      });
      if (bodyless) up.end();
      else req.pipe(up);
    };
    this.resolve(req).then((t) => {
      target = t;
      wokeAt = Date.now();
      send(t);
    }, (err: unknown) => {
      req.resume();
      if (err instanceof EdgeReject) this.page(res, err.status, err.detail, err.headers);
      else {
        this.deps.log.error({ err, host }, 'edge request failed');
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

  private async onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, secure: boolean): Promise<void> {
    const started = Date.now();
    socket.on('error', () => socket.destroy());
    const t = await this.resolve(req);
    const upstream = net.connect({ host: t.ip, port: t.route.port });
    this.track(t.key, socket);
    this.track(t.key, upstream);
    upstream.setNoDelay(true);
    (socket as net.Socket).setNoDelay?.(true);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      const headers = this.forwardHeaders(req, secure);
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
    socket.on('close', () => {
      upstream.destroy();
      this.deps.access.write({ status: 101, method: req.method ?? 'GET', host: req.headers.host ?? '', path: req.url ?? '', remote: (socket as net.Socket).remoteAddress ?? '', ms: Date.now() - started, bytes: 0, secure, workspace: t.ws.id, port: t.route.port, upgrade: true });
    });
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

  async listen(httpAddr: { host: string; port: number } | null, httpsAddr: { host: string; port: number } | null): Promise<void> {
    const listen = (s: net.Server, a: { host: string; port: number }) => new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(a.port, a.host, () => { s.off('error', reject); resolve(); });
    });
    if (httpAddr) await listen(this.http, httpAddr);
    if (httpsAddr && this.https) await listen(this.https, httpsAddr);
  }

  async close(): Promise<void> {
    this.unsubscribe();
    for (const key of [...this.sockets.keys()]) this.cut(key);
    for (const a of this.agents.values()) a.destroy();
    const closeServer = (s: net.Server & { closeAllConnections?: () => void }) => new Promise<void>((r) => {
      if (!s.listening) { r(); return; }
      s.closeAllConnections?.();
      s.close(() => r());
    });
    await closeServer(this.http);
    if (this.https) await closeServer(this.https);
  }
}

