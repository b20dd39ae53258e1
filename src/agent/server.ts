/**
 * The agent's HTTP server: plain node:http and the trie router (startup
 * speed and bundle size matter more than framework comfort). Order per
 * request: parse URL → authenticate → strip `/runtimes/<target>` → proxy or
 * route → handler → JSON or a stream. Any throw becomes the §2.1 error
 * body; nothing a client sends may take the agent down. WebSocket upgrades
 * take the same path to `/ws` (the runtime socket) or `/proxy`.
 */
import { AGENT_PORT, AGENT_ROUTES, DEFAULT_TARGET } from '../core/agent-protocol.ts';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { isAuthorized, isAuthorizedUpgrade } from './auth.ts';
import { AgentError } from '../core/agent-protocol/errors.ts';
import { registerExecRoutes } from './exec/routes.ts';
import { ExecService } from './exec/service.ts';
import { registerFileRoutes } from './files/routes.ts';
import type { Handler } from './http/context.ts';
import { sendError, sendJson } from './http/reply.ts';
import { registerInfoRoutes } from './info/routes.ts';
import { forwardHttp, forwardUpgrade } from './proxy/forward.ts';
import { resolveProxyTarget } from './proxy/target.ts';
import { Router, splitPath } from './router.ts';
import { registerSearchRoutes } from './search/routes.ts';
import { registerTerminalRoutes } from './terminals/routes.ts';
import { TerminalService } from './terminals/service.ts';
import { registerTransferRoutes } from './transfer/routes.ts';
import { registerWatcherRoutes } from './watchers/routes.ts';
import { WatcherService } from './watchers/service.ts';
import { HEARTBEAT_MS, WsHub } from './ws/hub.ts';
import { WorkloadPlane } from './workloads/plane.ts';
import { registerClaimRoutes, type AgentAuth } from './claim/routes.ts';

export interface AgentOptions {
  secret: string;
  port?: number;
  host?: string;
  workspaceId?: string;
  /** WebSocket ping interval (tests shorten it). */
  heartbeatMs?: number;
  /** Diagnostics sink (stderr in production). */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  /** Workload definitions (workloads.json) and logs; absent = a temporary dir (see workloads/paths.ts). */
  stateDir?: string;
  logDir?: string;
  /** Started by a warm pool: one POST /_hearth/claim may replace the secret (agent/claim). */
  pooled?: boolean;
}

export interface RunningAgent {
  url: string;
  port: number;
  host: string;
  /** Every registered route, `METHOD /pattern` (route-surface snapshot tests). */
  routes: string[];
  close(): Promise<void>;
}

export interface AgentServices {
  exec: ExecService;
  terminals: TerminalService;
  watchers: WatcherService;
  hub: WsHub;
}

export function createServices(heartbeatMs = HEARTBEAT_MS): AgentServices {
  const hub = new WsHub(heartbeatMs);
  const terminals = new TerminalService({
    output: (id, data) => hub.sendTerminalOutput(id, data),
    exit: (id, code) => hub.sendJson({ channel: 'terminal', type: 'exit', id: String(id), code }),
  });
  hub.setInputHandler({
    terminalInput: (id, data) => terminals.write(id, data),
    terminalResize: (id, cols, rows) => terminals.resize(id, cols, rows),
  });
  const watchers = new WatcherService((msg) => hub.sendJson(msg));
  return { exec: new ExecService(), terminals, watchers, hub };
}

/** Register every HTTP route; exported so a test can snapshot the surface. */
export function buildRouter(services: AgentServices, info: { workspaceId: string | undefined; startedAt: number }): Router<Handler> {
  const router = new Router<Handler>();
  registerInfoRoutes(router, info);
  registerExecRoutes(router, services.exec);
  registerFileRoutes(router);
  registerSearchRoutes(router);
  registerTransferRoutes(router);
  registerTerminalRoutes(router, services.terminals);
  registerWatcherRoutes(router, services.watchers);
  return router;
}

function decodeSegments(segs: string[]): string[] {
  try {
    return segs.map((s) => decodeURIComponent(s));
  } catch {
    throw new AgentError('bad_request', 'Malformed percent-encoding in path');
  }
}

/**
 * `/runtimes/<target>/…` addresses a target; this agent is the only one,
 * `default`. Returns the path without the prefix (still encoded).
 */
function stripTarget(pathname: string): string {
  const m = /^\/runtimes\/([^/]+)(\/.*)$/.exec(pathname);
  if (!m) return pathname;
  const target = decodeURIComponent(m[1] as string);
  if (target !== DEFAULT_TARGET) {
    throw new AgentError('not_found', `Unknown runtime target: ${target}`, { target });
  }
  return m[2] as string;
}

/** The part after `/proxy` when the path is a proxy path, else undefined. */
function proxyRest(path: string): string | undefined {
  if (path === '/proxy') return '';
  return path.startsWith('/proxy/') ? path.slice('/proxy'.length) : undefined;
}

function parseUrl(req: IncomingMessage): URL {
  try {
    return new URL(req.url ?? '/', 'http://agent');
  } catch {
    throw new AgentError('bad_request', 'Malformed request URL');
  }
}

function rejectUpgrade(socket: Duplex, status: number, reason: string): void {
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
  else socket.destroy();
}

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  if (!opts.secret) throw new Error('startAgent: a non-empty secret is required');
  // Read on every request: a claim of a pooled agent replaces it.
  const auth: AgentAuth = { secret: opts.secret, claimable: opts.pooled === true };
  // Workloads, logs, metrics; its log also feeds the boot log.
  const plane = new WorkloadPlane({
    stateDir: opts.stateDir, logDir: opts.logDir,
    log: opts.log ?? ((msg, fields) => process.stderr.write(`${JSON.stringify({ msg, ...fields })}\n`)),
  });
  const log = plane.log;
  const services = createServices(opts.heartbeatMs);
  const router = buildRouter(services, { workspaceId: opts.workspaceId, startedAt: Date.now() });
  plane.register(router);
  registerClaimRoutes(router, auth, log);
  plane.start();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = parseUrl(req);
    const path = stripTarget(url.pathname);
    const rest = proxyRest(path);
    // The proxy also takes `?token=` (spec §22.10 shows it on proxied URLs); it is stripped upstream.
    const authorized = rest === undefined ? isAuthorized(req, auth.secret) : isAuthorizedUpgrade(req, url, auth.secret);
    if (!authorized) throw new AgentError('unauthorized', 'Missing or invalid bearer token');
    if (rest !== undefined) {
      const header = req.headers['x-oblien-proxy-target'];
      forwardHttp(req, res, resolveProxyTarget(rest, url.searchParams, Array.isArray(header) ? header[0] : header));
      return;
    }
    const segs = decodeSegments(splitPath(path));
    const match = router.match(req.method ?? 'GET', segs);
    if (match.kind === 'not_found') throw new AgentError('not_found', `No route for ${req.method} ${url.pathname}`);
    if (match.kind === 'method_not_allowed') {
      res.setHeader('allow', match.allowed.join(', '));
      throw new AgentError('method_not_allowed', `${req.method} is not allowed on ${url.pathname}`, { allowed: match.allowed });
    }
    const result = await match.handler({ req, res, path: `/${segs.join('/')}`, query: url.searchParams, params: match.params });
    if (result !== undefined) sendJson(res, 200, result);
  };

  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    let url: URL;
    let path: string;
    try {
      url = parseUrl(req);
      path = stripTarget(url.pathname);
    } catch {
      rejectUpgrade(socket, 404, 'Not Found');
      return;
    }
    if (!isAuthorizedUpgrade(req, url, auth.secret)) {
      rejectUpgrade(socket, 401, 'Unauthorized');
      return;
    }
    if (path === AGENT_ROUTES.ws || path === `${AGENT_ROUTES.ws}/`) {
      services.hub.handleUpgrade(req, socket, head);
      return;
    }
    const rest = proxyRest(path);
    if (rest !== undefined) {
      try {
        const header = req.headers['x-oblien-proxy-target'];
        forwardUpgrade(req, socket, head, resolveProxyTarget(rest, url.searchParams, Array.isArray(header) ? header[0] : header));
      } catch {
        rejectUpgrade(socket, 400, 'Bad Request');
      }
      return;
    }
    rejectUpgrade(socket, 404, 'Not Found');
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!(err instanceof AgentError)) log('request failed', { method: req.method, url: req.url, error: String((err as Error)?.stack ?? err) });
      sendError(res, err);
    });
  });
  // Long execs and streamed uploads must not be cut by Node's default 5-minute request timeout.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 65_000;
  server.on('clientError', (_err, socket: Duplex) => rejectUpgrade(socket, 400, 'Bad Request'));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    try {
      upgrade(req, socket, head);
    } catch (err) {
      log('upgrade failed', { url: req.url, error: String((err as Error)?.stack ?? err) });
      socket.destroy();
    }
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => { void plane.close().finally(() => reject(err)); };
    server.once('error', onError);
    server.listen(opts.port ?? AGENT_PORT, opts.host ?? '0.0.0.0', () => {
      server.off('error', onError);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  plane.boot.record('listening', { host: addr.address, port: addr.port, workspace_id: opts.workspaceId ?? null });

  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    host: addr.address,
    routes: router.list(),
    close: async () => {
      await plane.close();
      services.exec.shutdown();
      services.terminals.shutdown();
      services.watchers.shutdown();
      services.hub.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
