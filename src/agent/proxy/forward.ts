/**
 * Loopback proxy forwarding: HTTP requests and WebSocket upgrades to a
 * service listening inside the workspace. Bodies stream both ways (SSE and
 * uploads pass through); the agent's credentials never reach upstream.
 */
import { request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { AgentError } from '../../core/agent-protocol/errors.ts';
import { sendError } from '../http/reply.ts';
import type { ProxyTarget } from './target.ts';

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus the agent's own. */
const DROP = new Set([
  'authorization', 'x-oblien-proxy-target', 'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade', 'host',
]);

function upstreamHeaders(h: IncomingHttpHeaders, t: ProxyTarget): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !DROP.has(k)) out[k] = v;
  out.host = `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
  return out;
}

export function forwardHttp(req: IncomingMessage, res: ServerResponse, t: ProxyTarget): void {
  const up = request({ host: t.host, port: t.port, method: req.method, path: t.path, headers: upstreamHeaders(req.headers, t) });
  up.on('response', (ur) => {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(ur.headers)) {
      if (v !== undefined && k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding') headers[k] = v;
    }
    res.writeHead(ur.statusCode ?? 502, ur.statusMessage, headers);
    res.flushHeaders();
    ur.pipe(res);
    ur.on('error', () => res.destroy());
  });
  up.on('error', (err: NodeJS.ErrnoException) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const why = err.code === 'ECONNREFUSED' ? `nothing is listening on ${t.host}:${t.port}` : err.message;
    sendError(res, new AgentError('bad_gateway', `Proxy to ${t.host}:${t.port} failed: ${why}`, { port: t.port }));
  });
  res.on('close', () => { if (!res.writableFinished) up.destroy(); });
  req.pipe(up);
}

/** Relay a WebSocket (or any Upgrade) handshake and then raw bytes both ways. */
export function forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, t: ProxyTarget): void {
  const up = connect(t.port, t.host);
  let connected = false;
  up.on('connect', () => {
    connected = true;
    const lines = [`${req.method ?? 'GET'} ${t.path} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i] as string;
      const lower = name.toLowerCase();
      if (lower === 'authorization' || lower === 'x-oblien-proxy-target' || lower === 'host') continue;
      lines.push(`${name}: ${req.rawHeaders[i + 1]}`);
    }
    lines.push(`Host: ${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`);
    up.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) up.write(head);
    socket.pipe(up).pipe(socket);
  });
  up.on('error', () => {
    if (!connected && socket.writable) socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  socket.on('error', () => up.destroy());
  socket.on('close', () => up.destroy());
  up.on('close', () => socket.destroy());
}
