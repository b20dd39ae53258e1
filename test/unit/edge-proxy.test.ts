/**
 * The edge's data path with the real HAProxy 2.6 (/usr/sbin/haproxy) and
 * hearthd's fallback backend in-process, against upstream servers on
 * loopback (no workspaces): routing by Host, 404/502/503/431/413/408 pages,
 * X-Forwarded-*, streaming, WebSocket, HTTP/2 over TLS, wake on request,
 * revoke cutting open connections, TLS by SNI with the Hearth CA and a
 * certificate added at runtime, HAProxy killed -9 and back with every route,
 * adoption of a running HAProxy by a new data path, the JSON access log, and
 * no HAProxy left behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { execFileSync } from 'node:child_process';
import pino from 'pino';
import { WebSocketServer, WebSocket } from 'ws';
import { EdgeFallback } from '../../src/edge/fallback.ts';
import { EdgeDataPath } from '../../src/edge/data-path.ts';
import { HearthCA } from '../../src/edge/ca.ts';
import { CertManager } from '../../src/edge/certs.ts';
import { accessLogFile, fileAccessLog } from '../../src/edge/access-log.ts';
import { processAlive } from '../../src/host/proxy/haproxy.ts';
import { openSqlite, type Db } from '../../src/store/db.ts';
import type { EdgeRoute } from '../../src/control/public-access.ts';
import type { Workspace } from '../../src/control/workspaces/row.ts';
import { waitUntil } from '../helpers/wait.ts';
import { freePort } from '../helpers/public-plane.ts';

const log = pino({ level: 'silent' });
let dir: string;
let db: Db;
let dp: EdgeDataPath;
let fallback: EdgeFallback;
let certs: CertManager;
let upstream: http.Server;
let upPort: number;
/** The same upstream on a second port: a route of its own (revoke cuts a workspace port once no hostname routes to it). */
let upPort2: number;
let second: net.Server;
let ca: HearthCA;
const routes = new Map<string, EdgeRoute>();
const listeners = new Set<(r: EdgeRoute[]) => void>();
const states = new Map<string, string>();
const touched: string[] = [];
let httpPort: number;
let httpsPort: number;
let haDir: string;

function addRoute(hostname: string, workspaceId: string, port: number): void {
  routes.set(hostname, { hostname, workspaceId, port, source: 'preview' });
}

async function removeRoute(host: string): Promise<void> {
  const r = routes.get(host)!;
  routes.delete(host);
  for (const l of listeners) l([r]);
  await dp.sync();
}

function newDataPath(): EdgeDataPath {
  return new EdgeDataPath({
    dir: haDir, accessLog: fileAccessLog(dir), fallbackSocket: path.join(dir, 'edge', 'hearthd.sock'),
    http: { host: '127.0.0.1', port: httpPort }, https: { host: '127.0.0.1', port: httpsPort },
    limits: { maxBodyBytes: 1000, headersTimeoutMs: 1500 },
    routes: () => [...routes.values()],
    targets: async (ids) => new Map(ids.filter((id) => states.has(id)).map((id) => [id, { running: states.get(id) === 'running', ip: '127.0.0.1' }])),
    certs, log, touch: (id) => touched.push(id), activityEveryMs: 60_000,
  });
}

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'edge-unit-'));
  haDir = path.join(dir, 'edge', 'haproxy');
  db = await openSqlite(':memory:');
  upstream = http.createServer((req, res) => {
    if (req.url === '/headers') { res.end(JSON.stringify(req.headers)); return; }
    if (req.url === '/stream') { res.write('a'); setTimeout(() => res.end('b'), 50); return; }
    if (req.url === '/hang') { res.write('started'); return; }
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => res.end(`ok ${req.method} ${n} ${req.httpVersion}`));
  });
  const wss = new WebSocketServer({ server: upstream });
  wss.on('connection', (s) => s.on('message', (d) => s.send(`echo:${d}`)));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  upPort = (upstream.address() as net.AddressInfo).port;
  second = net.createServer((c) => upstream.emit('connection', c));
  await new Promise<void>((r) => second.listen(0, '127.0.0.1', () => r()));
  upPort2 = (second.address() as net.AddressInfo).port;
  ca = await HearthCA.open(dir);
  certs = new CertManager(dir, db, ca, 'preview.test', null, log);
  await certs.init();
  addRoute('app.preview.test', 'ws_a', upPort);
  addRoute('dead.preview.test', 'ws_a', 1);
  addRoute('asleep.preview.test', 'ws_b', upPort);
  addRoute('napping.preview.test', 'ws_c', upPort);
  states.set('ws_a', 'running');
  states.set('ws_b', 'stopped');
  states.set('ws_c', 'sleeping');
  [httpPort, httpsPort] = [await freePort(), await freePort()];
  dp = newDataPath();
  fallback = new EdgeFallback({
    routes: { route: (h) => routes.get(h), onRoutesRemoved: (fn) => { listeners.add(fn); return () => listeners.delete(fn); } },
    workspace: async (id) => (states.has(id) ? ({ id, state: states.get(id), slotIndex: 1 } as unknown as Workspace) : null),
    internalIp: () => '127.0.0.1',
    certs, log,
    // ws_c sleeps and wakes on request; ws_b is stopped and stays so.
    lifecycle: {
      wake: async (ws) => {
        if (ws.id !== 'ws_c') return ws;
        states.set('ws_c', 'running');
        return { ...ws, state: 'running' } as Workspace;
      },
      touch: () => {},
    },
    onRunning: () => { void dp.sync(); },
  });
  await fallback.listen(path.join(dir, 'edge', 'hearthd.sock'));
  await dp.start();
});

after(async () => {
  const pid = dp.proc.pid;
  await dp.close();
  await fallback.close();
  certs.close();
  await new Promise((r) => second.close(r));
  await new Promise((r) => upstream.close(r));
  await db.destroy();
  if (pid) assert.equal(processAlive(pid), false, 'haproxy is stopped');
  const left = execFileSync('ps', ['-eo', 'pid=,args=']).toString().split('\n').filter((l) => l.includes(haDir));
  await fs.rm(dir, { recursive: true, force: true });
  assert.deepEqual(left, [], 'no haproxy left running on this data dir');
});

interface Got { status: number; body: string; headers: http.IncomingHttpHeaders }

function get(host: string, p = '/', opts: { secure?: boolean; headers?: Record<string, string>; method?: string; body?: string; agent?: http.Agent; ca?: string } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const o = { host: '127.0.0.1', path: p, method: opts.method ?? 'GET', headers: { host, ...opts.headers }, ...(opts.agent ? { agent: opts.agent } : {}) };
    const cb = (res: http.IncomingMessage) => { let b = ''; res.on('data', (c) => { b += c; }); res.on('end', () => resolve({ status: res.statusCode!, body: b, headers: res.headers })); };
    const req = opts.secure ? https.request({ ...o, port: httpsPort, servername: host, ca: opts.ca ?? ca.certPem }, cb) : http.request({ ...o, port: httpPort }, cb);
    req.on('error', reject);
    req.end(opts.body);
  });
}

test('routes by Host; unknown hosts get the 404 page from hearthd, never another route', async () => {
  assert.deepEqual([(await get('app.preview.test')).body, (await get('APP.preview.test:80')).body], ['ok GET 0 1.1', 'ok GET 0 1.1']);
  const miss = await get('other.preview.test');
  assert.equal(miss.status, 404);
  assert.match(miss.body, /Nothing here/);
  assert.equal((await get('garbage host!')).status, 404);
  assert.equal((await get('app.preview.test.')).status, 200, 'a trailing dot is the same name');
});

test('traffic HAProxy routes itself counts as activity (per-server counters → touch)', async () => {
  await dp.readActivity();
  touched.length = 0;
  await dp.readActivity();
  assert.deepEqual(touched, [], 'no traffic since the last look');
  await get('app.preview.test');
  await dp.readActivity();
  assert.deepEqual(touched, ['ws_a']);
});

test('X-Forwarded-* are set by the edge, client copies are dropped', async () => {
  const h = JSON.parse((await get('app.preview.test', '/headers', { headers: { 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'gopher', 'x-real-ip': '6.6.6.6' } })).body);
  assert.equal(h['x-forwarded-for'], '127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'http');
  assert.equal(h['x-forwarded-host'], 'app.preview.test');
  assert.equal(h['x-forwarded-port'], String(httpPort));
  assert.equal(h['x-real-ip'], '127.0.0.1');
  const s = JSON.parse((await get('app.preview.test', '/headers', { secure: true })).body);
  assert.equal(s['x-forwarded-proto'], 'https');
});

test('502 naming the port when nothing listens, 503 with Retry-After when the workspace is stopped, 413 over the body limit, 431 for huge headers', async () => {
  const dead = await get('dead.preview.test');
  assert.equal(dead.status, 502);
  assert.match(dead.body, /Connection to port 1 refused/);
  const asleep = await get('asleep.preview.test');
  assert.equal(asleep.status, 503);
  assert.equal(asleep.headers['retry-after'], '1');
  assert.equal((await get('app.preview.test', '/', { method: 'POST', body: 'x'.repeat(999) })).body, 'ok POST 999 1.1');
  const tooBig = await get('app.preview.test', '/', { method: 'POST', body: 'x'.repeat(1001) });
  assert.equal(tooBig.status, 413);
  assert.match(tooBig.body, /Request too large/);
  const big = await get('app.preview.test', '/', { headers: { 'x-big': 'y'.repeat(20_000) } });
  assert.equal(big.status, 431);
  assert.match(big.body, /Request headers too large/);
});

test('a sleeping workspace is woken by its first request, which is answered; HAProxy then routes it itself', async () => {
  const woke = await get('napping.preview.test', '/', { method: 'POST', body: 'abc' });
  assert.equal(woke.status, 200, woke.body);
  assert.equal(woke.body, 'ok POST 3 1.1');
  assert.equal(states.get('ws_c'), 'running');
  await waitUntil('the woken route in the map', async () => (await dp.proc.api.raw(`show map ${haDir}/hosts.map`)).includes('napping.preview.test'), 3000, 20);
});

test('slow-loris: incomplete headers are cut at the header deadline with 408', async () => {
  const s = net.connect(httpPort, '127.0.0.1');
  let got = '';
  s.on('data', (d) => { got += d; });
  s.write('GET / HTTP/1.1\r\nHost: app.preview.test\r\n');
  const t0 = Date.now();
  await new Promise((r) => s.once('close', r));
  assert.ok(Date.now() - t0 < 4000, `cut after ${Date.now() - t0} ms`);
  // HAProxy's own 408 page: its multiplexer answers before any rule or errorfile applies.
  assert.match(got, /^HTTP\/1\.[01] 408/);
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

test('HTTP/2 over TLS: ALPN picks h2 and requests are routed by :authority', async () => {
  const session = http2.connect(`https://127.0.0.1:${httpsPort}`, { servername: 'app.preview.test', ca: ca.certPem });
  try {
    await new Promise((r, j) => { session.once('connect', r); session.once('error', j); });
    assert.equal((session.socket as tls.TLSSocket).alpnProtocol, 'h2');
    const one = (p: string, authority: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({ ':path': p, ':authority': authority });
      let status = 0;
      let body = '';
      req.on('response', (h) => { status = Number(h[':status']); });
      req.on('data', (c) => { body += c; });
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
    // Several streams at once on one connection.
    const answers = await Promise.all([one('/', 'app.preview.test'), one('/headers', 'app.preview.test'), one('/', 'nope.preview.test')]);
    assert.equal(answers[0]!.status, 200);
    assert.match(answers[0]!.body, /^ok GET 0/);
    assert.equal(JSON.parse(answers[1]!.body)['x-forwarded-proto'], 'https');
    assert.equal(answers[2]!.status, 404);
  } finally {
    session.close();
  }
});

test('TLS: the preview wildcard from the Hearth CA by default; a certificate added while running is served by SNI', async () => {
  const peer = (servername: string) => new Promise<tls.PeerCertificate>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: httpsPort, servername, ca: ca.certPem }, () => { resolve(s.getPeerCertificate()); s.end(); });
    s.on('error', reject);
  });
  assert.equal((await peer('app.preview.test')).subjectaltname, 'DNS:*.preview.test, DNS:preview.test');
  addRoute('shop.example.org', 'ws_a', upPort);
  await dp.sync();
  await certs.request('shop.example.org', 'ws_a');
  await waitUntil('the new certificate', async () => (await peer('shop.example.org')).subjectaltname === 'DNS:shop.example.org', 3000, 20);
  assert.equal((await get('shop.example.org', '/', { secure: true })).status, 200);
  // A renewal replaces the certificate in place (set + commit ssl cert).
  const serial = (await peer('shop.example.org')).serialNumber;
  await certs.renew('shop.example.org', 'ws_a');
  await waitUntil('the renewed certificate', async () => (await peer('shop.example.org')).serialNumber !== serial, 3000, 20);
  assert.equal((await get('shop.example.org', '/', { secure: true })).status, 200);
  await certs.release('shop.example.org');
  await waitUntil('the certificate to go', async () => (await peer('app.preview.test')).subjectaltname !== 'DNS:shop.example.org'
    && (await peer('shop.example.org').then((c) => c.subjectaltname, () => 'refused')) !== 'DNS:shop.example.org', 3000, 20);
  routes.delete('shop.example.org');
  await dp.sync();
});

test('removing a route cuts its open connections at once (WebSocket, a response in flight); a kept-alive connection gets 404 next', async () => {
  addRoute('cut.preview.test', 'ws_a', upPort2);
  await dp.sync();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  assert.equal((await get('cut.preview.test', '/', { agent })).status, 200);
  const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/`, { headers: { host: 'cut.preview.test' } });
  await new Promise((r) => ws.once('open', r));
  const hanging = new Promise<string>((resolve) => {
    http.get({ host: '127.0.0.1', port: httpPort, path: '/hang', headers: { host: 'cut.preview.test' } }, (res) => {
      res.on('data', () => undefined);
      res.on('close', () => resolve('closed'));
      res.on('error', () => resolve('closed'));
    }).on('error', () => resolve('closed'));
  });
  await new Promise((r) => setTimeout(r, 100));
  const closed = Promise.all([new Promise((r) => ws.once('close', r)), hanging]);
  const t0 = Date.now();
  await removeRoute('cut.preview.test');
  await closed;
  assert.ok(Date.now() - t0 < 1000, `cut within ${Date.now() - t0} ms`);
  assert.equal((await get('cut.preview.test', '/', { agent })).status, 404, 'the next request on a kept-alive connection reaches no workspace');
  // Exposed again: its server comes back out of maintenance; HAProxy survives the churn (no del server, see data-path.ts).
  const pid = dp.proc.pid;
  addRoute('cut.preview.test', 'ws_a', upPort2);
  await dp.sync();
  for (let i = 0; i < 5; i++) assert.equal((await get('cut.preview.test', '/', { agent })).status, 200);
  await removeRoute('cut.preview.test');
  addRoute('cut2.preview.test', 'ws_a', upPort2);
  await dp.sync();
  for (let i = 0; i < 5; i++) assert.equal((await get('cut2.preview.test', '/', { agent })).status, 200);
  assert.equal(dp.proc.pid, pid);
  assert.equal(dp.restarts, 0);
  await removeRoute('cut2.preview.test');
  agent.destroy();
});

test('kill -9 of HAProxy: hearthd starts it again within 1 s, with every route and certificate', async () => {
  const before = dp.proc.pid!;
  const t0 = Date.now();
  process.kill(before, 'SIGKILL');
  await waitUntil('routes to work again', async () => {
    const r = await get('app.preview.test', '/', { secure: true }).catch(() => null);
    return r?.status === 200;
  }, 5000, 10);
  const took = Date.now() - t0;
  assert.notEqual(dp.proc.pid, before);
  assert.ok(took < 1000, `back in ${took} ms`);
  assert.equal((await get('dead.preview.test')).status, 502);
  assert.equal(dp.restarts, 1);
});

test('a new data path adopts a running HAProxy (hearthd restarted) without a gap, and keeps changing it', async () => {
  const pid = dp.proc.pid!;
  await dp.close(false);
  assert.ok(processAlive(pid), 'HAProxy outlives the hearthd that started it');
  assert.equal((await get('app.preview.test')).status, 200, 'and keeps serving meanwhile');
  addRoute('later.preview.test', 'ws_a', upPort);
  dp = newDataPath();
  await dp.start();
  assert.equal(dp.proc.pid, pid, 'adopted, not restarted');
  assert.equal((await get('later.preview.test')).status, 200);
  assert.match((await dp.proc.api.raw(`show map ${haDir}/hosts.map`)), /later\.preview\.test ws_a\./, 'routed by HAProxy itself');
});

test('the access log has one JSON line per request, written by HAProxy', async () => {
  const file = accessLogFile(dir);
  await waitUntil('log lines', async () => (await fs.readFile(file, 'utf8')).includes('later.preview.test'), 3000, 20);
  const text = await fs.readFile(file, 'utf8');
  const lines = text.trim().split('\n').map((l) => { try { return JSON.parse(l); } catch { throw new Error(`not a JSON line: ${l}`); } });
  const seen = JSON.stringify(lines.map((e) => [e.status, e.workspace, e.port, e.upgrade, e.secure, e.proto]));
  assert.ok(lines.some((e) => e.status === 200 && e.workspace === 'ws_a' && e.port === upPort && e.host === 'app.preview.test' && typeof e.ms === 'number'), seen);
  assert.ok(lines.some((e) => e.status === 404 && e.workspace === '-'), seen);
  assert.ok(lines.some((e) => e.status === 101 && e.upgrade === true && e.secure === true), seen);
  assert.ok(lines.some((e) => e.status === 408), seen);
  assert.ok(lines.some((e) => e.proto === '2.0'), seen);
});
