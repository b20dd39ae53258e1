/**
 * The web console's server side, mounted on the control plane's fastify app
 * under /console (compose.ts):
 *   - the page and its bundle (bundle.ts), with a strict CSP;
 *   - sign-in with an API key or a one-time link, sign-out (sessions.ts);
 *   - /console/api/* → the API itself, and /console/rt/* → the data-plane
 *     gateway, both proxied over loopback so streams (SSE) flow as they come.
 * The proxy authorizes nothing itself: it checks the session cookie and,
 * for anything but GET/HEAD, the CSRF token, then forwards with the session
 * as a credential the API turns into the key's principal (keys.ts), so the
 * console sees exactly what that key may see through the API's own checks.
 * Runtime calls carry the runtime token the browser got from the API.
 */
import http from 'node:http';
import type { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HttpError, errorBody } from '../api/errors.ts';
import { Unauthenticated } from '../core/errors.ts';
import type { Principal } from '../auth/principal.ts';
import type { ConsoleAwareKeys } from './keys.ts';
import { CONSOLE_SESSION_HEADER } from './keys.ts';
import { SESSION_TTL_MS, type ConsoleSessions } from './sessions.ts';
import { BundleCache } from './bundle.ts';
import { csrfMatches, parseCookies, sessionCookies, clearedCookies, SESSION_COOKIE, CSRF_COOKIE, CSRF_HEADER } from './cookies.ts';

export interface ConsoleDeps {
  keys: ConsoleAwareKeys;
  sessions: ConsoleSessions;
  /** The data-plane gateway's URL, once it listens. */
  runtimeUrl: () => string | null;
  bundle?: BundleCache;
}

export const CONSOLE_PATH = '/console';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Request headers a proxied call keeps; everything else (cookies, credentials) stays behind. */
const FORWARD_REQUEST = ['content-type', 'content-length', 'accept', 'last-event-id', 'range', 'x-request-id'];
/** Response headers the browser gets back from a proxied call. */
const FORWARD_RESPONSE = ['content-type', 'content-length', 'content-disposition', 'cache-control', 'retry-after', 'x-request-id', 'content-range', 'accept-ranges'];

const CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data: blob:",
  // The terminal's WebSocket goes straight to the gateway, on its own port.
  "connect-src 'self' ws: wss:", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'",
].join('; ');

function page(script: string, style: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Hearth console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${CONSOLE_PATH}/assets/${style}">
<script type="module" src="${CONSOLE_PATH}/assets/${script}"></script>
</head>
<body><div id="app"></div></body>
</html>
`;
}

function loopbackOf(a: AddressInfo): string {
  return a.address === '0.0.0.0' || a.address === '::' ? (a.family === 'IPv6' ? '::1' : '127.0.0.1') : a.address;
}

export function mountConsole(app: FastifyInstance, deps: ConsoleDeps): { bundle: BundleCache } {
  const bundle = deps.bundle ?? new BundleCache();
  const { sessions, keys } = deps;

  /** The session behind a request's cookie, or a 401 the page understands. */
  const sessionOf = async (req: FastifyRequest) => {
    const id = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    const s = id ? await sessions.find(id) : null;
    if (!id || !s) throw new HttpError('missing_credentials', 'not signed in to the console (or the session expired): sign in again');
    return { id, ...s };
  };
  const requireCsrf = (req: FastifyRequest, csrf: string) => {
    if (SAFE_METHODS.has(req.method)) return;
    const cookie = parseCookies(req.headers.cookie)[CSRF_COOKIE];
    const header = req.headers[CSRF_HEADER];
    if (!csrfMatches(csrf, cookie, Array.isArray(header) ? header[0] : header)) {
      throw new HttpError('forbidden', `missing or wrong CSRF token: a state-changing console request must send the ${CSRF_HEADER} header`, { reason: 'csrf' });
    }
  };
  const sendPage = async (_req: FastifyRequest, reply: FastifyReply) => {
    const b = await bundle.get();
    return reply.header('content-security-policy', CSP).header('x-frame-options', 'DENY').header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff').header('cache-control', 'no-store').type('text/html; charset=utf-8').send(page(b.script, b.style));
  };

  // The page itself answers every console path the browser may land on (/console/w/<id>/terminal, …).
  app.get(CONSOLE_PATH, async (_req, reply) => reply.redirect(`${CONSOLE_PATH}/`, 302));
  app.get(`${CONSOLE_PATH}/`, sendPage);
  app.get(`${CONSOLE_PATH}/*`, sendPage);

  app.get(`${CONSOLE_PATH}/assets/:name`, async (req, reply) => {
    const name = (req.params as { name: string }).name;
    const asset = (await bundle.get()).assets.get(name);
    if (!asset) throw new HttpError('not_found', `no console asset ${name}`);
    return reply.header('cache-control', 'public, max-age=31536000, immutable').header('x-content-type-options', 'nosniff').type(asset.type).send(asset.body);
  });

  /** Who a session is, as the page needs it: the same answer from sign-in and from GET /console/session. */
  const whoami = (p: Principal, csrf: string, expiresAt: Date) => ({
    success: true, signed_in: true, client_id: p.clientId, admin: p.admin, namespace: p.namespace, csrf, expires_at: expiresAt.toISOString(),
  });
  const signIn = async (reply: FastifyReply, clientId: string) => {
    const s = await sessions.create(clientId);
    const p = await keys.authenticate({ [CONSOLE_SESSION_HEADER]: keys.proxyHeader(s.id) });
    reply.header('set-cookie', sessionCookies(s.id, s.csrf, Math.floor(SESSION_TTL_MS / 1000)));
    return whoami(p, s.csrf, s.expiresAt);
  };

  app.post(`${CONSOLE_PATH}/session`, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const clientId = typeof body.client_id === 'string' ? body.client_id.trim() : '';
    const secret = typeof body.client_secret === 'string' ? body.client_secret.trim() : '';
    if (!clientId || !secret) throw new HttpError('missing_credentials', 'enter both the Client ID and the Client secret of an API key');
    try {
      // The API's own check, rate limit on bad secrets included.
      await keys.authenticate({ 'x-client-id': clientId, 'x-client-secret': secret }, req.ip);
    } catch (err) {
      if (err instanceof Unauthenticated) throw new HttpError('invalid_credentials', 'this Client ID and Client secret do not match a live API key');
      throw err;
    }
    return signIn(reply, clientId);
  });

  app.post(`${CONSOLE_PATH}/link`, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const token = typeof body.token === 'string' ? body.token : '';
    const clientId = token ? await sessions.redeemLink(token) : null;
    if (!clientId) throw new HttpError('invalid_credentials', 'this sign-in link was already used or has expired: run `hearth console-link` for a new one');
    return signIn(reply, clientId);
  });

  app.get(`${CONSOLE_PATH}/session`, async (req) => {
    // "Nobody" is an answer here, not an error: the page asks before it knows.
    const id = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (!id || !(await sessions.find(id))) return { success: true, signed_in: false };
    const s = await sessionOf(req);
    // Through the same check as every proxied call: the key may have been revoked since sign-in.
    const p = await keys.authenticate({ [CONSOLE_SESSION_HEADER]: keys.proxyHeader(s.id) });
    return whoami(p, s.csrf, s.expiresAt);
  });

  app.delete(`${CONSOLE_PATH}/session`, async (req, reply) => {
    const s = await sessionOf(req);
    requireCsrf(req, s.csrf);
    await sessions.end(s.id);
    reply.header('set-cookie', clearedCookies());
    return { success: true };
  });

  // The proxies take bodies as they come: no parsing, no size limit of their own (the target has its limits).
  app.register(async (proxy) => {
    proxy.removeAllContentTypeParsers();
    proxy.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

    const forward = async (req: FastifyRequest, reply: FastifyReply, target: { host: string; port: number; prefix: string }, auth: Record<string, string>) => {
      const rest = req.url.slice(req.url.indexOf('/', CONSOLE_PATH.length + 1));
      const headers: Record<string, string> = { ...auth };
      for (const name of FORWARD_REQUEST) {
        const v = req.headers[name];
        if (typeof v === 'string') headers[name] = v;
      }
      reply.hijack();
      const res = reply.raw;
      const up = http.request({ host: target.host, port: target.port, method: req.method, path: target.prefix + rest, headers }, (upRes) => {
        const out: Record<string, string | string[]> = { 'x-content-type-options': 'nosniff' };
        for (const name of FORWARD_RESPONSE) {
          const v = upRes.headers[name];
          if (v !== undefined) out[name] = v;
        }
        if (String(upRes.headers['content-type'] ?? '').startsWith('text/event-stream')) out['x-accel-buffering'] = 'no';
        res.writeHead(upRes.statusCode ?? 502, out);
        upRes.pipe(res);
      });
      up.on('error', (err) => {
        if (res.headersSent) { res.destroy(); return; }
        const e = new HttpError('workspace_unavailable', `the console could not reach ${target.prefix === '' ? 'the API' : 'the runtime gateway'}: ${err.message}`);
        res.writeHead(e.status, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify(errorBody(e, req.id)));
      });
      res.on('close', () => up.destroy());
      const body = req.body as Readable | undefined;
      if (body && typeof body.pipe === 'function') body.pipe(up);
      else up.end();
    };

    proxy.all(`${CONSOLE_PATH}/api/*`, async (req, reply) => {
      const s = await sessionOf(req);
      requireCsrf(req, s.csrf);
      const a = app.server.address() as AddressInfo;
      await forward(req, reply, { host: loopbackOf(a), port: a.port, prefix: '' }, { [CONSOLE_SESSION_HEADER]: keys.proxyHeader(s.id) });
    });

    proxy.all(`${CONSOLE_PATH}/rt/*`, async (req, reply) => {
      const s = await sessionOf(req);
      requireCsrf(req, s.csrf);
      const rt = deps.runtimeUrl();
      if (!rt) throw new HttpError('workspace_unavailable', 'the runtime gateway is not listening yet');
      const token = req.headers['x-runtime-token'];
      if (typeof token !== 'string' || !token) throw new HttpError('missing_credentials', 'a runtime call needs the X-Runtime-Token header (from the workspace\'s runtime-api-access token)');
      const u = new URL(rt);
      await forward(req, reply, { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port), prefix: '' }, { authorization: `Bearer ${token}` });
    });
  });

  // Build the bundle now, so the first page is served without waiting for it.
  bundle.get().catch((err) => app.log.error({ err }, 'the console bundle did not build'));
  return { bundle };
}
