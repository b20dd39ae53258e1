/**
 * The data-plane gateway. It authenticates the caller's runtime token, finds
 * the workspace the token names, and streams the request to that
 * workspace's agent (HTTP and WebSocket), swapping the caller's token for the
 * agent's own secret. One protocol end to end: no translation here.
 *
 * Hot path per request: the token's signature is checked once and cached
 * (tokens.ts); the workspace row is read on every request (one primary-key
 * read, ~0.1 ms) so that rotation, disabling and deletion take effect at
 * once; upstream connections are pooled per workspace generation, so a
 * restarted agent is never sent a request on a dead pooled socket.
 * Requests that outlive their admission (WebSockets, exec streams,
 * downloads) are tracked and ended when their token is revoked or the
 * workspace stops (sessions.ts), WebSockets with a proper close frame.
 */
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { TokenSigner } from '../auth/jwt.ts';
import type { HostDriver } from '../host/host-driver.ts';
import { agentHeaders } from '../host/agent-client.ts';
import type { WorkspaceService } from '../control/workspaces/index.ts';
import type { Workspace } from '../control/workspaces/row.ts';
import { HttpError, errorBody } from '../api/errors.ts';
import { judge, type Denial } from './access.ts';
import { relayUpgrade } from './relay.ts';
import { SessionRegistry } from './sessions.ts';
import { TokenCache, requestToken, withoutToken, type RuntimeGrant } from './tokens.ts';
import { CLOSE_GOING_AWAY, CLOSE_POLICY } from './ws-frames.ts';

export interface GatewayDeps {
  workspaces: Pick<WorkspaceService, 'byId'> & Partial<Pick<WorkspaceService, 'wake'>>;
  host: Pick<HostDriver, 'agentEndpoint'>;
  signer: Pick<TokenSigner, 'verify'>;
  /** Whether the credential that minted a runtime token still stands (ApiKeys.issuerAlive). */
  issuers: { issuerAlive(issuer: RuntimeGrant['issuer']): Promise<boolean> };
  log: Logger;
  /** Session re-check interval (tests shorten it). */
  sweepMs?: number;
}

interface Target {
  grant: RuntimeGrant;
  ws: Workspace;
  ip: string;
  port: number;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus what the gateway replaces. */
const STRIP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'authorization', 'host']);

/** Upstream errors worth one retry on a fresh connection: a pooled socket the agent had already closed. */
const STALE_SOCKET = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/**
 * Pools keep-alive connections per agent *incarnation*: the pool name
 * includes the workspace generation, which a restart bumps, so a request
 * never lands on a socket to an agent that no longer exists.
 */
class AgentPool extends http.Agent {
  override getName(options: http.ClientRequestArgs & { hearthGeneration?: number; hearthWorkspace?: string }): string {
    // A freed slot's address is reused by a new workspace: key pools by workspace too.
    return `${super.getName(options)}:${options.hearthWorkspace ?? ''}:g${options.hearthGeneration ?? 0}`;
  }
}

function denialError(d: Denial, ws: Workspace | null): HttpError {
  if (d.kind === 'revoked') return new HttpError('invalid_credentials', d.message);
  return new HttpError('workspace_unavailable', d.message, { workspace_id: ws?.id, status: d.state }, 'start it with workspaces.start(id)');
}

function closeCode(d: Denial | undefined): [number, string] {
  if (!d) return [CLOSE_GOING_AWAY, 'gateway shutting down'];
  return d.kind === 'revoked' ? [CLOSE_POLICY, 'runtime token revoked'] : [CLOSE_GOING_AWAY, `workspace ${d.state}`];
}

/** A whole HTTP/1.1 error response with the §2.1 body, for sockets that were never handed to node:http's response. */
/** The runtime desktop API's paths (always on the root runtime URL, never target-prefixed). */
function isDesktopPath(url: string | undefined): boolean {
  const path = (url ?? '/').split('?')[0]!;
  return path === '/desktop' || path.startsWith('/desktop/');
}

function rawHttpError(e: HttpError): string {
  const body = JSON.stringify(errorBody(e));
  return `HTTP/1.1 ${e.status} ${http.STATUS_CODES[e.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

export class Gateway {
  readonly server: http.Server;
  readonly sessions: SessionRegistry;
  private readonly pool = new AgentPool({ keepAlive: true, keepAliveMsecs: 10_000, maxFreeSockets: 32, scheduling: 'lifo', timeout: 30_000 });
  private readonly tokens: TokenCache;

  constructor(private readonly deps: GatewayDeps) {
    this.tokens = new TokenCache(deps.signer);
    this.sessions = new SessionRegistry((id) => deps.workspaces.byId(id), (issuer) => deps.issuers.issuerAlive(issuer), deps.sweepMs);
    this.server = http.createServer({
      noDelay: true,
      // Long uploads and streams are the point of a data plane: no whole-request deadline.
      requestTimeout: 0,
    }, (req, res) => { this.onRequest(req, res).catch((err) => this.fail(res, err)); });
    // Idle client connections live longer than the SDK's (undici keeps them 4 s).
    this.server.keepAliveTimeout = 65_000;
    this.server.on('upgrade', (req, socket, head) => { this.onUpgrade(req, socket, head).catch((err) => this.failSocket(socket, err)); });
  }

  private async resolve(req: http.IncomingMessage): Promise<Target> {
    const token = requestToken(req.headers.authorization, req.url);
    if (!token) throw new HttpError('missing_credentials', 'missing runtime token: send Authorization: Bearer <token> (from apiAccess.getToken)');
    const grant = await this.tokens.verify(token);
    if (!grant) throw new HttpError('invalid_credentials', 'invalid or expired runtime token: fetch a new one with apiAccess.getToken');
    let ws = await this.deps.workspaces.byId(grant.ws);
    // A sleeping workspace wakes on its first request (idle sleep, §6), which then proceeds.
    if (ws?.state === 'sleeping' && ws.runtimeEnabled && ws.runtimeTokenGen === grant.gen && this.deps.workspaces.wake) ws = await this.deps.workspaces.wake(ws.id);
    const denial = judge(ws, grant, await this.deps.issuers.issuerAlive(grant.issuer));
    if (denial) throw denialError(denial, ws);
    const ep = this.deps.host.agentEndpoint({ slotIndex: ws!.slotIndex! });
    return { grant, ws: ws!, ip: ep.ip, port: ep.port };
  }

  private forwardHeaders(req: http.IncomingMessage, target: Target): http.OutgoingHttpHeaders {
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!STRIP.has(k) && v !== undefined) headers[k] = v;
    // How an agent is authenticated is the agent client's to say.
    Object.assign(headers, agentHeaders({ ip: target.ip, port: target.port, secret: target.ws.agentSecret }));
    headers.host = `${target.ip}:${target.port}`;
    headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
    if (req.headers['transfer-encoding']) headers['transfer-encoding'] = req.headers['transfer-encoding'];
    return headers;
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = await this.resolve(req);
    if (isDesktopPath(req.url)) return this.desktop(req, res);
    const untrack = this.sessions.add({
      grant: target.grant,
      end: () => { res.destroy(); },
    });
    res.on('close', untrack);
    const bodyless = req.headers['transfer-encoding'] === undefined && (req.headers['content-length'] ?? '0') === '0';
    this.forward(req, res, target, bodyless);
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, target: Target, bodyless: boolean, retried = false): void {
    const options: http.RequestOptions & { hearthGeneration: number; hearthWorkspace: string } = {
      host: target.ip, port: target.port, method: req.method, path: withoutToken(req.url),
      headers: this.forwardHeaders(req, target), agent: this.pool, hearthGeneration: target.ws.generation, hearthWorkspace: target.ws.id,
    };
    const upstream = http.request(options);
    upstream.on('response', (up) => {
      const headers = { ...up.headers };
      delete headers.connection;
      delete headers['keep-alive'];
      res.writeHead(up.statusCode ?? 502, up.statusMessage, headers);
      up.pipe(res);
      up.on('error', () => res.destroy());
      up.on('aborted', () => res.destroy());
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) {
        res.destroy(err);
        return;
      }
      // A pooled socket the agent closed meanwhile: a request without a body can simply go again.
      if (!retried && bodyless && upstream.reusedSocket && STALE_SOCKET.has(err.code ?? '') && !res.destroyed) {
        this.forward(req, res, target, bodyless, true);
        return;
      }
      this.fail(res, new HttpError('workspace_unavailable', `workspace agent unreachable: ${err.message}`, { workspace_id: target.ws.id }, 'the workspace may be restarting; retry shortly'));
    });
    // A client that goes away must not leave the agent streaming into the void.
    res.on('close', () => { if (!res.writableFinished) upstream.destroy(); });
    if (bodyless) upstream.end();
    else req.pipe(upstream);
  }

  private async onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const target = await this.resolve(req);
    if (isDesktopPath(req.url)) {
      socket.end(rawHttpError(new HttpError('not_supported', 'the workspace desktop (VNC tunnel) is not offered by this server')));
      return;
    }
    (socket as net.Socket).setNoDelay?.(true);
    const upstream = net.connect({ host: target.ip, port: target.port, noDelay: true });
    const headers = this.forwardHeaders(req, target);
    headers.connection = 'Upgrade';
    headers.upgrade = req.headers.upgrade ?? 'websocket';
    const lines = [`${req.method} ${withoutToken(req.url)} HTTP/1.1`];
    for (const [k, v] of Object.entries(headers)) {
      for (const value of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${String(value)}`);
    }
    const relay = relayUpgrade(socket, upstream, lines.join('\r\n') + '\r\n\r\n', head, () => rawHttpError(
      new HttpError('workspace_unavailable', 'workspace agent unreachable', { workspace_id: target.ws.id }, 'the workspace may be restarting; retry shortly'),
    ));
    const untrack = this.sessions.add({
      grant: target.grant,
      end: (denial) => relay.close(...closeCode(denial)),
    });
    void relay.done.then(untrack);
  }

  /**
   * rt.desktop.*: no desktop is offered here, said in the SDK's own words
   * (status answers supported:false, the actions not_supported), for an
   * authenticated caller, and without reaching the agent.
   */
  private desktop(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '');
    if (req.method === 'GET' && path === '/desktop/status') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ success: true, supported: false, enabled: false, available: false, credentials: null, transports: [], reason: 'this server does not offer a workspace desktop' }));
      return;
    }
    this.fail(res, new HttpError('not_supported', 'the workspace desktop is not offered by this server', { path }, 'run a desktop inside the workspace yourself (e.g. Xvfb and a VNC server) and reach it through an exposed port or SSH port forwarding'));
  }

  private fail(res: http.ServerResponse, err: unknown): void {
    const e = err instanceof HttpError ? err : new HttpError('server_error', err instanceof Error ? err.message : String(err));
    if (e.status >= 500 && !(err instanceof HttpError)) this.deps.log.error({ err }, 'gateway error');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = JSON.stringify(errorBody(e));
    res.writeHead(e.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private failSocket(socket: Duplex, err: unknown): void {
    const e = err instanceof HttpError ? err : new HttpError('server_error', String(err));
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(rawHttpError(e));
  }

  async close(): Promise<void> {
    this.sessions.closeAll();
    this.pool.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
