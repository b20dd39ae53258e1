/**
 * The edge in-process, against upstream servers on loopback (no root, no
 * workspaces): routing by Host, 404/502/503/431/413 pages, X-Forwarded-*,
 * streaming, WebSocket upgrades, revoke cutting open connections, TLS by
 * SNI with the Hearth CA.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { X509Certificate } from 'node:crypto';
import pino from 'pino';
import { WebSocketServer, WebSocket } from 'ws';
import { Edge } from '../../src/edge/server.ts';
import { HearthCA } from '../../src/edge/ca.ts';
import { CertManager } from '../../src/edge/certs.ts';
import { nullAccessLog, type AccessEntry } from '../../src/edge/access-log.ts';
import { openSqlite, type Db } from '../../src/store/db.ts';
import type { EdgeRoute } from '../../src/control/public-access.ts';
import type { Workspace } from '../../src/control/workspaces/row.ts';

const log = pino({ level: 'silent' });
let dir: string;
let db: Db;
let edge: Edge;
let upstream: http.Server;
let upPort: number;
let ca: HearthCA;
const routes = new Map<string, EdgeRoute>();
const listeners = new Set<(r: EdgeRoute[]) => void>();
const states = new Map<string, string>();
const access: AccessEntry[] = [];
let httpPort: number;
let httpsPort: number;

function removeRoute(host: string): void {
  const r = routes.get(host)!;
  routes.delete(host);
  for (const l of listeners) l([r]);
}

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'edge-unit-'));
  db = await openSqlite(':memory:');
  upstream = http.createServer((req, res) => {
    if (req.url === '/headers') { res.end(JSON.stringify(req.headers)); return; }
    if (req.url === '/stream') { res.write('a'); setTimeout(() => res.end('b'), 50); return; }
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => res.end(`ok ${req.method} ${n}`));
  });
  const wss = new WebSocketServer({ server: upstream });
  wss.on('connection', (s) => s.on('message', (d) => s.send(`echo:${d}`)));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  upPort = (upstream.address() as net.AddressInfo).port;
  ca = await HearthCA.open(dir);
  const certs = new CertManager(dir, db, ca, 'preview.test', null, log);
  await certs.init();
  routes.set('app.preview.test', { hostname: 'app.preview.test', workspaceId: 'ws_a', port: upPort, source: 'preview' });
  routes.set('dead.preview.test', { hostname: 'dead.preview.test', workspaceId: 'ws_a', port: 1, source: 'preview' });
  routes.set('asleep.preview.test', { hostname: 'asleep.preview.test', workspaceId: 'ws_b', port: upPort, source: 'preview' });
  states.set('ws_a', 'running');
  states.set('ws_b', 'stopped');
  edge = new Edge({
    routes: { route: (h) => routes.get(h), onRoutesRemoved: (fn) => { listeners.add(fn); return () => listeners.delete(fn); } },
    workspace: async (id) => (states.has(id) ? ({ id, state: states.get(id) } as unknown as Workspace) : null),
    internalIp: () => '127.0.0.1',
    certs, log, access: { ...nullAccessLog, write: (e) => access.push(e) },
    lifecycle: { wake: async (ws) => ws, touch: () => {} },
    limits: { maxBodyBytes: 1000, headersTimeoutMs: 1500 },
  });
  await edge.listen({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 0 });
  httpPort = (edge.http.address() as net.AddressInfo).port;
  httpsPort = (edge.https!.address() as net.AddressInfo).port;
});

after(async () => {
  await edge.close();
  await new Promise((r) => upstream.close(r));
  await db.destroy();
  await fs.rm(dir, { recursive: true, force: true });
});

function get(host: string, p = '/', opts: { secure?: boolean; headers?: Record<string, string>; method?: string; body?: string; agent?: http.Agent } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const o = { host: '127.0.0.1', path: p, method: opts.method ?? 'GET', headers: { host, ...opts.headers }, ...(opts.agent ? { agent: opts.agent } : {}) };
    const cb = (res: http.IncomingMessage) => { let b = ''; res.on('data', (c) => { b += c; }); res.on('end', () => resolve({ status: res.statusCode!, body: b, headers: res.headers })); };
    const req = opts.secure ? https.request({ ...o, port: httpsPort, servername: host, ca: ca.certPem }, cb) : http.request({ ...o, port: httpPort }, cb);
    req.on('error', reject);
    req.end(opts.body);
  });
}

test('routes by Host; unknown hosts get the 404 page, never another route', async () => {
  assert.deepEqual([(await get('app.preview.test')).body, (await get('APP.preview.test:80')).body], ['ok GET 0', 'ok GET 0']);
  const miss = await get('other.preview.test');
  assert.equal(miss.status, 404);
  assert.match(miss.body, /Nothing here/);
  assert.equal((await get('garbage host!')).status, 404);
});

test('X-Forwarded-* are set by the edge, client copies are dropped; hop-by-hop headers are not forwarded', async () => {
  const h = JSON.parse((await get('app.preview.test', '/headers', { headers: { 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'gopher', connection: 'x-secret', 'x-secret': 's' } })).body);
  assert.equal(h['x-forwarded-for'], '127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'http');
  assert.equal(h['x-forwarded-host'], 'app.preview.test');
  assert.equal(h['x-secret'], undefined, 'headers named in Connection are hop-by-hop');
  const s = JSON.parse((await get('app.preview.test', '/headers', { secure: true })).body);
  assert.equal(s['x-forwarded-proto'], 'https');
});

test('502 when nothing listens, 503 with Retry-After when the workspace is not running, 413 over the body limit, 431 for huge headers', async () => {
  const dead = await get('dead.preview.test');
  assert.equal(dead.status, 502);
  assert.match(dead.body, /Connection to port 1 refused/);
  const asleep = await get('asleep.preview.test');
  assert.equal(asleep.status, 503);
  assert.equal(asleep.headers['retry-after'], '1');
  assert.equal((await get('app.preview.test', '/', { method: 'POST', body: 'x'.repeat(999) })).body, 'ok POST 999');
  assert.equal((await get('app.preview.test', '/', { method: 'POST', body: 'x'.repeat(1001) })).status, 413);
  const big = await get('app.preview.test', '/', { headers: { 'x-big': 'y'.repeat(20_000) } });
  assert.equal(big.status, 431);
});

test('slow-loris: incomplete headers are cut at the header deadline with 408', async () => {
  const s = net.connect(httpPort, '127.0.0.1');
  let got = '';
  s.on('data', (d) => { got += d; });
  s.write('GET / HTTP/1.1\r\nHost: app.preview.test\r\n');
  const t0 = Date.now();
  await new Promise((r) => s.once('close', r));
  assert.ok(Date.now() - t0 < 4000, `cut after ${Date.now() - t0} ms`);
  assert.match(got, /^HTTP\/1\.1 408/);
});

test('streaming responses pass through unbuffered; WebSocket upgrades work over TLS', async () => {
  assert.equal((await get('app.preview.test', '/stream')).body, 'ab');
  const ws = new WebSocket(`wss://127.0.0.1:${httpsPort}/`, { headers: { host: 'app.preview.test' }, servername: 'app.preview.test', ca: ca.certPem } as never);
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  const m = new Promise((r) => ws.once('message', (d) => r(String(d))));
  ws.send('hi');
  assert.equal(await m, 'echo:hi');
  ws.close();
});

test('TLS: the preview wildcard from the Hearth CA, chosen by SNI', async () => {
  const cert = await new Promise<string>((resolve, reject) => {
    const s = (https.get({ host: '127.0.0.1', port: httpsPort, path: '/', servername: 'app.preview.test', headers: { host: 'app.preview.test' }, ca: ca.certPem }, (res) => {
      resolve((res.socket as import('node:tls').TLSSocket).getPeerX509Certificate()!.subjectAltName ?? '');
      res.resume();
    }));
    s.on('error', reject);
  });
  assert.equal(cert, 'DNS:*.preview.test, DNS:preview.test');
  assert.ok(new X509Certificate(ca.certPem).ca);
});

test('removing a route cuts its open connections at once (keep-alive and WebSocket)', async () => {
  routes.set('cut.preview.test', { hostname: 'cut.preview.test', workspaceId: 'ws_a', port: upPort, source: 'preview' });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  assert.equal((await get('cut.preview.test', '/', { agent })).status, 200);
  const sock = Object.values(agent.freeSockets).flat()[0]!;
  const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/`, { headers: { host: 'cut.preview.test' } });
  await new Promise((r) => ws.once('open', r));
  assert.ok(edge.openConnections('ws_a', upPort) >= 3);
  const closed = Promise.all([new Promise((r) => sock.once('close', r)), new Promise((r) => ws.once('close', r))]);
  removeRoute('cut.preview.test');
  await closed;
  assert.equal((await get('cut.preview.test')).status, 404);
  agent.destroy();
  assert.ok(access.some((e) => e.status === 200 && e.workspace === 'ws_a'));
});
