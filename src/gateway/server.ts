/**
 * The data-plane gateway. It authenticates the caller's runtime token, finds
 * the workspace the token names, and streams the request to that
 * workspace's agent (HTTP and WebSocket), swapping the caller's token for the
 * agent's own secret. One protocol end to end: no translation here.
 */
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { TokenSigner } from '../auth/jwt.ts';
import type { HostDriver } from '../host/host-driver.ts';
import type { WorkspaceService } from '../control/workspaces.ts';
import type { Workspace } from '../control/workspace-row.ts';
import { HttpError, errorBody } from '../api/errors.ts';

export interface GatewayDeps {
  workspaces: WorkspaceService;
  host: HostDriver;
  signer: TokenSigner;
  log: Logger;
}

interface Target {
  ws: Workspace;
  ip: string;
  port: number;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus what the gateway replaces. */
const STRIP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'authorization', 'host']);

export class Gateway {
  readonly server: http.Server;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64, keepAliveMsecs: 10_000 });
  /** Verified token → claims, so the hot path does not re-verify HMACs. Bounded. */
  private readonly verified = new Map<string, { ws: string; gen: number; expMs: number }>();

  constructor(private readonly deps: GatewayDeps) {
    this.server = http.createServer((req, res) => { this.onRequest(req, res).catch((err) => this.fail(res, err)); });
    this.server.on('upgrade', (req, socket) => { this.onUpgrade(req, socket).catch((err) => this.failSocket(socket, err)); });
    this.server.keepAliveTimeout = 65_000;
  }

  private async resolve(req: http.IncomingMessage): Promise<Target> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const auth = req.headers.authorization;
    const token = auth && /^bearer\s+/i.test(auth) ? auth.replace(/^bearer\s+/i, '').trim() : url.searchParams.get('token');
    if (!token) throw new HttpError('missing_credentials', 'missing runtime token: send Authorization: Bearer <token> (from apiAccess.getToken)');
    const claims = await this.verify(token);
    if (!claims) throw new HttpError('invalid_credentials', 'invalid or expired runtime token: fetch a new one with apiAccess.getToken');
    const ws = await this.deps.workspaces.byId(claims.ws);
    // A rotated/disabled token fails here at once: its generation is no longer current.
    if (!ws || ws.state === 'deleted' || ws.state === 'deleting' || !ws.runtimeEnabled || ws.runtimeTokenGen !== claims.gen) {
      throw new HttpError('invalid_credentials', 'runtime token revoked (rotated, disabled or workspace deleted): fetch a new one with apiAccess.getToken');
    }
    if (ws.state !== 'running' || ws.slotIndex === null) {
      throw new HttpError('workspace_unavailable', `workspace ${ws.id} is ${ws.state}`, { workspace_id: ws.id, status: ws.state }, 'start it with workspaces.start(id)');
    }
    const ep = this.deps.host.agentEndpoint({ slotIndex: ws.slotIndex });
    return { ws, ip: ep.ip, port: ep.port };
  }

  private async verify(token: string): Promise<{ ws: string; gen: number } | null> {
    const hit = this.verified.get(token);
    if (hit && hit.expMs > Date.now()) return hit;
    const claims = await this.deps.signer.verify(token);
    if (!claims || claims.kind !== 'runtime') return null;
    if (this.verified.size > 10_000) this.verified.clear();
    const entry = { ws: claims.ws, gen: claims.gen, expMs: claims.exp * 1000 };
    this.verified.set(token, entry);
    return entry;
  }

  private forwardHeaders(req: http.IncomingMessage, target: Target): http.OutgoingHttpHeaders {
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!STRIP.has(k) && v !== undefined) headers[k] = v;
    headers.authorization = `Bearer ${target.ws.agentSecret}`;
    headers.host = `${target.ip}:${target.port}`;
    headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
    if (req.headers['transfer-encoding']) headers['transfer-encoding'] = req.headers['transfer-encoding'];
    return headers;
  }

  private stripToken(rawUrl: string | undefined): string {
    const url = new URL(rawUrl ?? '/', 'http://gateway');
    url.searchParams.delete('token');
    return url.pathname + url.search;
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = await this.resolve(req);
    const upstream = http.request({
      host: target.ip, port: target.port, method: req.method, path: this.stripToken(req.url),
      headers: this.forwardHeaders(req, target), agent: this.agent,
    });
    upstream.on('response', (up) => {
      const headers = { ...up.headers };
      delete headers.connection;
      delete headers['keep-alive'];
      res.writeHead(up.statusCode ?? 502, headers);
      up.pipe(res);
      // A client that goes away must not leave the agent streaming into the void.
      res.on('close', () => { if (!up.complete) up.destroy(); });
    });
    upstream.on('error', (err) => {
      if (!res.headersSent) this.fail(res, new HttpError('workspace_unavailable', `workspace agent unreachable: ${err.message}`, { workspace_id: target.ws.id }, 'the workspace may be restarting; retry shortly'));
      else res.destroy(err);
    });
    req.on('close', () => { if (!req.complete) upstream.destroy(); });
    req.pipe(upstream);
  }

  private async onUpgrade(req: http.IncomingMessage, socket: Duplex): Promise<void> {
    const target = await this.resolve(req);
    const upstream = net.connect(target.port, target.ip);
    upstream.setNoDelay(true);
    const headers = this.forwardHeaders(req, target);
    headers.connection = 'Upgrade';
    headers.upgrade = req.headers.upgrade ?? 'websocket';
    const lines = [`${req.method} ${this.stripToken(req.url)} HTTP/1.1`];
    for (const [k, v] of Object.entries(headers)) {
      for (const value of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${String(value)}`);
    }
    upstream.write(lines.join('\r\n') + '\r\n\r\n');
    upstream.pipe(socket);
    socket.pipe(upstream);
    const close = () => { upstream.destroy(); socket.destroy(); };
    upstream.on('error', close);
    socket.on('error', close);
    upstream.on('close', close);
    socket.on('close', close);
  }

  private fail(res: http.ServerResponse, err: unknown): void {
    const e = err instanceof HttpError ? err : new HttpError('server_error', err instanceof Error ? err.message : String(err));
    if (e.status >= 500 && !(err instanceof HttpError)) this.deps.log.error({ err }, 'gateway error');
    if (res.headersSent) { res.destroy(); return; }
    const body = JSON.stringify(errorBody(e));
    res.writeHead(e.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private failSocket(socket: Duplex, err: unknown): void {
    const e = err instanceof HttpError ? err : new HttpError('server_error', String(err));
    const body = JSON.stringify(errorBody(e));
    socket.end(`HTTP/1.1 ${e.status} ${http.STATUS_CODES[e.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  }

  async close(): Promise<void> {
    this.agent.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
