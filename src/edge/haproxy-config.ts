/**
 * The edge's HAProxy configuration, rendered from data: pure, golden-tested
 * in test/golden/haproxy.cfg. hearthd writes these files into the data dir
 * and starts HAProxy on them; later changes go through the runtime API
 * (src/host/proxy/), and the files are rebuilt whole at every (re)start so a
 * restarted HAProxy comes back with every route and certificate.
 *
 * How a request is routed:
 *   - `hosts.map` maps a normalized Host to a route server name
 *     `<workspace id>.<port>` (one server per exposed workspace port, in the
 *     backend `be_routes`, selected by `use-server`). Only running
 *     workspaces are in the map; everything else (unknown hosts, pending
 *     custom domains, sleeping or stopped workspaces, ACME HTTP-01 paths)
 *     goes to hearthd's own backend `be_hearthd` over a Unix socket, which
 *     answers 404/503, wakes a sleeping workspace and hands the request on.
 *   - Route servers have weight 0, so load balancing never picks one: a
 *     name that is missing or in maintenance falls through to the only
 *     eligible server, hearthd (a `backup`), never to another workspace.
 *   - A refused connection is redispatched once to hearthd, which sees why
 *     (asleep → wake; running → the 502 page naming the port).
 */
import { edgePageRaw, type EdgePage } from './pages.ts';

export interface HaproxyLimits {
  /** Total request header bytes; larger → 431 (HAProxy's own parser refuses past tune.bufsize − maxrewrite with 400). */
  maxHeaderBytes: number;
  /** Time for a client to send complete request headers (slow-loris) → 408. */
  headersTimeoutMs: number;
  /** Declared Content-Length above this → 413. */
  maxBodyBytes: number;
  /** Inactivity on the workspace side before 504. */
  upstreamTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** How long hearthd's backend may take (a wake included). */
  fallbackTimeoutMs: number;
}

export const DEFAULT_HAPROXY_LIMITS: HaproxyLimits = {
  maxHeaderBytes: 16 * 1024,
  headersTimeoutMs: 10_000,
  maxBodyBytes: 100 * 1024 * 1024,
  upstreamTimeoutMs: 60_000,
  keepAliveTimeoutMs: 65_000,
  fallbackTimeoutMs: 90_000,
};

export interface RouteServer {
  /** `<workspace id>.<port>` (routeServerName). */
  name: string;
  ip: string;
  port: number;
}

export interface HaproxySpec {
  /** Directory holding every file below (the data dir's edge/haproxy). */
  dir: string;
  /** hearthd's backend, a Unix socket path. */
  fallbackSocket: string;
  /** hearthd's access-log receiver on 127.0.0.1 (UDP, src/edge/access-log.ts). */
  logPort: number;
  http: { host: string; port: number } | null;
  https: { host: string; port: number } | null;
  limits: HaproxyLimits;
  servers: RouteServer[];
  /** hostname → server name (only hosts HAProxy sends straight to a workspace). */
  hosts: [string, string][];
  /** PEM files (certificate + key); the first is the default certificate (no or unknown SNI). */
  certFiles: string[];
}

export interface HaproxyFiles {
  'haproxy.cfg': string;
  'hosts.map': string;
  'crt-list': string;
  /** Error pages, `errors/<status>.http`: whole HTTP responses. */
  errors: Record<string, string>;
}

export const ROUTES_BACKEND = 'be_routes';
export const PAGE_STATUSES: EdgePage[] = [400, 408, 413, 431, 502, 503, 504];

/** The server of a workspace port: one per (workspace, port), shared by all its hostnames. */
export function routeServerName(workspaceId: string, port: number): string {
  return `${workspaceId}.${port}`;
}

const sec = (ms: number) => `${Math.max(1, Math.round(ms))}ms`;
const addr = (a: { host: string; port: number }) => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

/**
 * One JSON object per request on HAProxy's stdout (the access log file).
 * Fields that may be absent use var() defaults or quoting so the line stays
 * valid JSON even for requests refused before any rule ran (408, 400).
 */
function logFormat(secure: boolean): string {
  return "'" + [
    '{"time":"%[date,utime(%Y-%m-%dT%H:%M:%SZ)]"',
    '"status":%ST',
    '"method":"%HM"',
    '"host":"%[var(txn.host,-),json(utf8s)]"',
    '"path":"%[var(txn.path,-),json(utf8s)]"',
    '"remote":"%ci"',
    '"ms":%Ta',
    '"bytes":%B',
    `"secure":${secure}`,
    '"workspace":"%[var(txn.route,-),field(1,.)]"',
    '"port":%[var(txn.port,0)]',
    '"upgrade":%[var(txn.upgrade,false)]',
    '"proto":"%[var(txn.proto,-)]"',
    '"term":"%ts"}',
  ].join(',') + "'";
}

function frontend(name: string, spec: HaproxySpec, secure: boolean): string[] {
  const l = spec.limits;
  const bind = secure
    ? `  bind ${addr(spec.https!)} ssl crt-list ${spec.dir}/crt-list alpn h2,http/1.1`
    : `  bind ${addr(spec.http!)}`;
  const page = (s: number) => `${spec.dir}/errors/${s}.body`;
  return [
    `frontend ${name}`,
    bind,
    `  log-format ${logFormat(secure)}`,
    '  http-request set-var(txn.host) req.hdr(host),field(1,:),lower,regsub(\\.$,)',
    '  http-request set-var(txn.path) path',
    '  http-request set-var(txn.proto) req.ver',
    '  http-request set-var(txn.upgrade) str(true) if { req.hdr(upgrade) -m found }',
    `  http-request return status 431 content-type "text/html; charset=utf-8" file ${page(431)} hdr cache-control no-store if { req.hdrs,length gt ${l.maxHeaderBytes} }`,
    `  http-request return status 413 content-type "text/html; charset=utf-8" file ${page(413)} hdr cache-control no-store if { req.hdr_val(content-length) gt ${l.maxBodyBytes} }`,
    // The edge is the first hop Hearth trusts: a client's own X-Forwarded-* is replaced, not extended.
    '  http-request del-header x-forwarded-for',
    '  http-request del-header x-real-ip',
    `  http-request set-header x-forwarded-proto ${secure ? 'https' : 'http'}`,
    '  http-request set-header x-forwarded-host %[req.hdr(host)]',
    '  http-request set-header x-forwarded-port %[dst_port]',
    '  http-request set-header x-real-ip %[src]',
    `  http-request set-var(txn.route) var(txn.host),map(${spec.dir}/hosts.map)`,
    '  http-request set-var(txn.port) var(txn.route),field(2,.) if { var(txn.route) -m found }',
    ...(secure ? [] : ['  use_backend be_hearthd if { path_beg /.well-known/acme-challenge/ }']),
    `  use_backend ${ROUTES_BACKEND} if { var(txn.route) -m found }`,
    '  default_backend be_hearthd',
    '',
  ];
}

export function renderHaproxy(spec: HaproxySpec): HaproxyFiles {
  const l = spec.limits;
  const lines = [
    '# Written by hearthd from its store (src/edge/haproxy-config.ts); rebuilt whole at every start.',
    '# Changes while it runs go through the runtime API on admin.sock: do not edit.',
    'global',
    `  stats socket ${spec.dir}/admin.sock mode 600 level admin`,
    '  stats timeout 10m',
    `  log 127.0.0.1:${spec.logPort} len 4096 format raw local0 info`,
    // Room for headers up to maxHeaderBytes (431 past it) plus HAProxy's rewrite reserve.
    `  tune.bufsize ${Math.max(16384, 2 * l.maxHeaderBytes)}`,
    '  ssl-default-bind-options ssl-min-ver TLSv1.2',
    '',
    'defaults',
    '  mode http',
    '  log global',
    '  option forwardfor',
    '  option http-keep-alive',
    '  timeout connect 2s',
    // Also the TLS handshake's deadline (HAProxy 2.6 has no separate one).
    `  timeout client ${sec(l.headersTimeoutMs)}`,
    `  timeout http-request ${sec(l.headersTimeoutMs)}`,
    `  timeout http-keep-alive ${sec(l.keepAliveTimeoutMs)}`,
    `  timeout server ${sec(l.upstreamTimeoutMs)}`,
    '  timeout tunnel 1h',
    '  timeout client-fin 5s',
    // Connections that never made a request (TLS handshake failures, timeouts) get a line of the same shape.
    `  error-log-format '{"time":"%[date,utime(%Y-%m-%dT%H:%M:%SZ)]","status":%ST,"remote":"%ci","error":"%[fc_err_str,json(utf8s)]","term":"%ts"}'`,
    ...PAGE_STATUSES.filter((s) => s !== 431 && s !== 413).map((s) => `  errorfile ${s} ${spec.dir}/errors/${s}.http`),
    '',
    ...(spec.http ? frontend('fe_http', spec, false) : []),
    ...(spec.https ? frontend('fe_https', spec, true) : []),
    `backend ${ROUTES_BACKEND}`,
    '  balance first',
    // Server state changes are not access-log lines.
    '  no log',
    '  retries 1',
    '  option redispatch 1',
    '  http-reuse safe',
    '  use-server %[var(txn.route)] if { var(txn.route) -m found }',
    `  server hearthd unix@${spec.fallbackSocket} backup`,
    ...spec.servers.map((s) => `  server ${s.name} ${s.ip}:${s.port} weight 0`),
    '',
    'backend be_hearthd',
    '  no log',
    `  timeout server ${sec(l.fallbackTimeoutMs)}`,
    `  server hearthd unix@${spec.fallbackSocket}`,
    '',
  ];
  const errors: Record<string, string> = {};
  for (const s of PAGE_STATUSES) {
    const raw = edgePageRaw(s, undefined, s === 503 ? { 'retry-after': '1' } : {});
    errors[`${s}.http`] = raw;
    errors[`${s}.body`] = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  }
  return {
    'haproxy.cfg': lines.join('\n'),
    'hosts.map': spec.hosts.map(([h, s]) => `${h} ${s}\n`).join(''),
    'crt-list': spec.certFiles.map((f) => `${f}\n`).join(''),
    errors,
  };
}
