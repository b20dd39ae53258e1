/**
 * Public access through the edge, with the official SDK against a real
 * `hearth serve` (container driver): a real HTTP server in a workspace
 * answers on its preview URL over HTTP and HTTPS (verified with the Hearth
 * CA), streams, carries a WebSocket echo, and is cut off at once by revoke;
 * limits and bad input get clean answers; a custom domain gets a real ACME
 * certificate from Debian's pebble on loopback once its owner proved it
 * with a DNS TXT record on a loopback DNS server (an unproven domain is
 * pending: not routed, no certificate, and another tenant cannot squat it).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import http from 'node:http';
import https from 'node:https';
import http2 from 'node:http2';
import { WebSocket } from 'ws';
import { Oblien, Runtime, ConflictError, NotFoundError } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';
import { WORKSPACE_SERVER_JS, freePort, startLoopbackDns, startPebble, type Pebble } from '../helpers/public-plane.ts';

let h: HearthInstance;
let client: Oblien;
let edgeHttp: number;
let edgeHttps: number;
let previewDomain: string;
let hearthCa: string;
let pebble: Pebble;
let dns: Awaited<ReturnType<typeof startLoopbackDns>>;
let workDir: string;

before(async () => {
  if (needsRoot) return;
  workDir = await fs.mkdtemp('/tmp/hearth-edge-test-');
  dns = await startLoopbackDns();
  const httpPort = await freePort();
  pebble = await startPebble(path.join(workDir, 'pebble'), httpPort, dns.port);
  // hearthd talks to pebble's API over TLS: trust pebble's own certificate (inherited by the child).
  process.env.NODE_EXTRA_CA_CERTS = pebble.tlsCertFile;
  h = await startHearth({ extraArgs: [
    '--edge-listen', `127.0.0.1:${httpPort}`, '--edge-tls-listen', '127.0.0.1:0', '--ssh-listen', 'off',
    '--acme-directory', pebble.directory, '--dns-server', `127.0.0.1:${dns.port}`, '--min-idle-seconds', '1',
  ] });
  delete process.env.NODE_EXTRA_CA_CERTS;
  const ep = JSON.parse(await fs.readFile(path.join(h.dataDir, 'endpoints.json'), 'utf8'));
  edgeHttp = Number(new URL(ep.edge).port);
  edgeHttps = Number(new URL(ep.edge_tls).port);
  previewDomain = ep.preview_domain;
  assert.equal(edgeHttp, httpPort);
  hearthCa = await fs.readFile(path.join(h.dataDir, 'edge', 'ca', 'ca.pem'), 'utf8');
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});

after(async () => {
  if (h) await h.stop();
  await pebble?.stop();
  await dns?.close();
  if (workDir) await fs.rm(workDir, { recursive: true, force: true });
});

interface Got { status: number; headers: http.IncomingHttpHeaders; body: string }

/** A request to the edge on loopback with a given Host (preview names need no DNS). */
function viaEdge(hostname: string, pathName = '/', opts: { secure?: boolean; ca?: string; method?: string; headers?: Record<string, string>; body?: string; agent?: http.Agent } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const common = { host: '127.0.0.1', path: pathName, method: opts.method ?? 'GET', headers: { host: hostname, ...opts.headers }, ...(opts.agent ? { agent: opts.agent } : {}) };
    const onRes = (res: http.IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    };
    const req = opts.secure
      ? https.request({ ...common, port: edgeHttps, servername: hostname, ca: opts.ca ?? hearthCa }, onRes)
      : http.request({ ...common, port: edgeHttp }, onRes);
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function startServer(id: string, port: number): Promise<void> {
  const { token } = await client.workspaces.apiAccess.enable(id) as { token: string };
  const rt = new Runtime({ token, baseUrl: h.runtime });
  await rt.files.write({ fullPath: '/app/server.js', content: WORKSPACE_SERVER_JS });
  const r = await rt.exec.run(['sh', '-c', `PORT=${port} nohup node /app/server.js >/tmp/server-${port}.log 2>&1 &`]);
  assert.equal(r.exit_code, 0, r.stderr);
  await waitUntil(`server on ${port}`, async () => (await rt.exec.run(['sh', '-c', `cat /tmp/server-${port}.log`])).stdout?.includes('listening'), 20_000, 100);
}

function hostOf(url: string): string {
  return new URL(url).hostname;
}

test('a workspace HTTP server answers on its preview URL over HTTP and HTTPS; WebSocket; revoke cuts it at once', { skip: needsRoot, timeout: 180_000 }, async () => {
  const ws = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  await startServer(ws.id, 3000);

  const port = await client.workspaces.publicAccess.expose(ws.id, { port: 3000, label: 'web' }) as Record<string, any>;
  assert.equal(port.port, 3000);
  assert.match(port.hash, /^[a-z0-9]{10}$/);
  assert.equal(port.url, `https://${port.hash}.${previewDomain}:${edgeHttps}`);
  const host = hostOf(port.url);
  const again = await client.workspaces.publicAccess.expose(ws.id, { port: 3000 }) as Record<string, any>;
  assert.equal(again.hash, port.hash, 'exposing an exposed port returns the existing record');
  const listed = await client.workspaces.publicAccess.list(ws.id) as Record<string, any>[];
  assert.deepEqual(listed.map((p) => p.port), [3000]);
  const net1 = await client.workspaces.network.get(ws.id) as Record<string, any>;
  assert.deepEqual(net1.ingress_ports, [3000], 'exposing opens the port (§7 ingress_ports)');

  const plain = await viaEdge(host, '/', { method: 'POST', body: 'x'.repeat(1000) });
  assert.equal(plain.status, 200);
  assert.match(plain.body, /^hello from .* port 3000 POST 1000$/);
  const secure = await viaEdge(host, '/', { secure: true });
  assert.equal(secure.status, 200, 'HTTPS verified against the Hearth CA');
  assert.match(secure.body, /port 3000 GET/);
  const hdrs = JSON.parse((await viaEdge(host, '/headers', { secure: true, headers: { 'x-forwarded-for': '6.6.6.6' } })).body);
  assert.equal(hdrs['x-forwarded-proto'], 'https');
  assert.equal(hdrs['x-forwarded-for'], '127.0.0.1', 'a client-sent X-Forwarded-For is replaced, not trusted');
  assert.equal(hdrs['x-forwarded-host'], host);
  assert.equal(hdrs.host, host, 'the app sees its public Host');
  const streamed = await viaEdge(host, '/stream');
  assert.equal(streamed.body, 'chunk0\nchunk1\nchunk2\nchunk3\nchunk4\n');
  assert.equal(streamed.headers['transfer-encoding'], 'chunked');

  // WebSocket echo through the edge, over TLS.
  const sock = new WebSocket(`wss://127.0.0.1:${edgeHttps}/echo`, { headers: { host }, servername: host, ca: hearthCa } as never);
  await new Promise((r, j) => { sock.once('open', r); sock.once('error', j); });
  const echoed = new Promise<string>((r) => sock.once('message', (d) => r(String(d))));
  sock.send('ping through the edge');
  assert.equal(await echoed, 'ping through the edge');

  // The open WebSocket is cut by revoke; an idle keep-alive client connection is not tied to a route
  // in HAProxy (each request is routed anew), so its next request reaches no workspace.
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
  assert.equal((await viaEdge(host, '/', { agent: keepAlive })).status, 200);
  const wsClosed = new Promise((r) => sock.once('close', r));
  const t0 = Date.now();
  await client.workspaces.publicAccess.revoke(ws.id, 3000);
  await wsClosed;
  assert.ok(Date.now() - t0 < 1000, `open connections closed within ${Date.now() - t0} ms of revoke`);
  assert.equal((await viaEdge(host, '/', { agent: keepAlive })).status, 404, 'the kept-alive connection reaches no workspace after revoke');
  const gone = await viaEdge(host);
  assert.equal(gone.status, 404);
  assert.match(gone.body, /No workspace port is exposed at this address/);
  assert.deepEqual((await client.workspaces.network.get(ws.id) as Record<string, any>).ingress_ports, []);
  keepAlive.destroy();
  await client.workspaces.delete(ws.id);
});

test('slug URLs, updateSlug, the 20-port limit, 502 for nobody listening, 404 for unknown hosts', { skip: needsRoot, timeout: 120_000 }, async () => {
  const ws = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  await startServer(ws.id, 3000);
  const p = await client.workspaces.publicAccess.expose(ws.id, { port: 3000, slug: 'my-api' }) as Record<string, any>;
  assert.equal(hostOf(p.url), `my-api.${previewDomain}`);
  assert.equal((await viaEdge(`my-api.${previewDomain}`)).status, 200);
  assert.equal((await viaEdge(`${p.hash}.${previewDomain}`)).status, 200, 'the hash URL keeps working');
  const moved = await client.workspaces.publicAccess.updateSlug(ws.id, 3000, { slug: 'my-api-2' }) as Record<string, any>;
  assert.equal(hostOf(moved.url), `my-api-2.${previewDomain}`);
  assert.equal((await viaEdge(`my-api.${previewDomain}`)).status, 404, 'the old slug is released');
  assert.equal((await viaEdge(`my-api-2.${previewDomain}`)).status, 200);

  const other = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  await assert.rejects(client.workspaces.publicAccess.expose(other.id, { port: 8080, slug: 'my-api-2' }), (e: any) => e instanceof ConflictError && e.status === 409);

  // Nobody listens on 4000: a clear 502 page, not a hang.
  const dead = await client.workspaces.publicAccess.expose(ws.id, { port: 4000 }) as Record<string, any>;
  const bad = await viaEdge(hostOf(dead.url));
  assert.equal(bad.status, 502);
  assert.match(bad.body, /Nothing is listening/);
  assert.match(String(bad.headers["content-type"]), /text\/html/);

  // 20 ports at most (3000 and 4000 are two of them).
  for (let port = 5000; port < 5018; port++) await client.workspaces.publicAccess.expose(ws.id, { port });
  assert.equal((await client.workspaces.publicAccess.list(ws.id) as unknown[]).length, 20);
  await assert.rejects(client.workspaces.publicAccess.expose(ws.id, { port: 6000 }), (e: any) => e.status === 409 && e.code === 'PORT_LIMIT_REACHED');
  await client.workspaces.publicAccess.revoke(ws.id, 5000);
  await client.workspaces.publicAccess.expose(ws.id, { port: 6000 });
  await assert.rejects(client.workspaces.publicAccess.revoke(ws.id, 7777), NotFoundError);

  const unknown = await viaEdge(`nope.${previewDomain}`);
  assert.equal(unknown.status, 404);
  assert.equal((await viaEdge('127.0.0.1')).status, 404, 'an IP Host reaches no workspace');
  const unknownTls = await viaEdge(`nope.${previewDomain}`, '/', { secure: true });
  assert.equal(unknownTls.status, 404);
  await client.workspaces.delete(other.id);
  await client.workspaces.delete(ws.id);
  // A deleted workspace's hostnames are released: another workspace may take the slug.
  const third = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  await client.workspaces.publicAccess.expose(third.id, { port: 3000, slug: 'my-api-2' });
  await client.workspaces.delete(third.id);
});

test('oversized headers get 431; a slow-loris connection is timed out', { skip: needsRoot, timeout: 60_000 }, async () => {
  const big = await viaEdge(`x.${previewDomain}`, '/', { headers: { 'x-big': 'a'.repeat(24 * 1024) } }).catch((e) => e);
  assert.equal(big.status, 431, String(big));
  assert.match(big.body, /Request headers too large/);
  // Past HAProxy's buffer its own parser refuses the request.
  const huge = await viaEdge(`x.${previewDomain}`, '/', { headers: { 'x-big': 'a'.repeat(64 * 1024) } }).catch((e) => e);
  assert.equal(huge.status, 400, String(huge));

  // Send a request line and then one header byte per second: the edge must hang up (408) at its header deadline.
  const sock = net.connect(edgeHttp, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const t0 = Date.now();
  sock.write('GET / HTTP/1.1\r\nHost: slow.example\r\nX-Slow: ');
  let got = '';
  sock.on('data', (d) => { got += d; });
  const drip = setInterval(() => { if (!sock.destroyed) sock.write('a'); }, 1000);
  await new Promise((r) => sock.once('close', r));
  clearInterval(drip);
  const took = Date.now() - t0;
  assert.ok(took < 15_000, `slow-loris cut after ${took} ms`);
  assert.match(got, /^HTTP\/1\.[01] 408/);

  // TLS: a client that never finishes the handshake is cut too.
  const raw = net.connect(edgeHttps, '127.0.0.1');
  const t1 = Date.now();
  await new Promise((r) => raw.once('close', r));
  assert.ok(Date.now() - t1 < 15_000);
});

test('a custom domain gets a certificate from a real ACME server (pebble) and is served over HTTPS; a taken domain is 409', { skip: needsRoot, timeout: 180_000 }, async () => {
  const ws = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  await startServer(ws.id, 3000);
  const domain = 'app.hearth-test.example';
  // Proof of ownership: publish the TXT record the first connect asks for, then connect again.
  const claim = await client.workspaces.domains.connect(ws.id, { domain, port: 3000 }) as Record<string, any>;
  dns.txt.set(claim.verification.host, [claim.verification.value]);
  const connected = await client.workspaces.domains.connect(ws.id, { domain, port: 3000 }) as Record<string, any>;
  assert.equal(connected.domain, domain);
  assert.equal(connected.url, `https://${domain}:${edgeHttps}`);
  assert.ok(['pending', 'active'].includes(connected.ssl.status));
  const dnsCheck = await client.workspaces.domains.checkDNS(ws.id, { domain }) as Record<string, any>;
  assert.deepEqual(dnsCheck.records.A, ['127.0.0.1']);

  const info = await waitUntil('the ACME certificate', async () => {
    const d = await client.workspaces.domains.get(ws.id) as Record<string, any> | null;
    return d?.sslStatus === 'active' && d.sslExpiry ? d : false;
  }, 90_000, 500).catch(async (e) => { throw new Error(`${e.message}\n${pebble.logs.join('').slice(-3000)}`); });
  assert.equal(info.customDomain, domain);
  const ssls = await client.domain.ssls() as Record<string, any>;
  const row = ssls.data.find((c: any) => c.domain === domain);
  assert.equal(row.source, 'acme');
  assert.equal(row.active, true);
  assert.ok(dns.queries.some((q) => q.startsWith(`${domain} `)), 'pebble resolved the domain through the loopback DNS');

  // The edge serves it over HTTPS with the ACME certificate: verify against pebble's root, by SNI.
  const root = await pebble.root();
  const got = await viaEdge(domain, '/', { secure: true, ca: root });
  assert.equal(got.status, 200);
  assert.match(got.body, /port 3000/);
  const peer = await new Promise<tls.PeerCertificate>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: edgeHttps, servername: domain, ca: root }, () => { resolve(s.getPeerCertificate()); s.end(); });
    s.on('error', reject);
  });
  assert.match(peer.subjectaltname ?? '', new RegExp(`DNS:${domain.replace(/\./g, '\\.')}`));
  assert.doesNotMatch(String(peer.issuer.CN), /Hearth/, 'issued by pebble, not the Hearth CA');

  const renewed = await client.workspaces.domains.renewSSL(ws.id) as Record<string, any>;
  assert.equal(renewed.ssl.status, 'active');

  // Another workspace cannot take it.
  const other = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  await assert.rejects(client.workspaces.domains.connect(other.id, { domain, port: 3000 }), (e: any) => e instanceof ConflictError && e.status === 409);
  await assert.rejects(client.workspaces.publicAccess.expose(other.id, { port: 3000, domain }), (e: any) => e.status === 409);

  await client.workspaces.domains.disconnect(ws.id);
  assert.equal(await client.workspaces.domains.get(ws.id), null);
  assert.equal((await viaEdge(domain)).status, 404);
  // Now free: the other workspace takes it as an exact-hostname expose (seed form).
  const exposed = await client.workspaces.publicAccess.expose(other.id, { port: 3000, domain }) as Record<string, any>;
  assert.equal(exposed.url, `https://${domain}:${edgeHttps}`);
  await client.workspaces.delete(other.id);
  await client.workspaces.delete(ws.id);
});

/** An SDK client bound to one namespace (a namespace API key made by the admin). */
async function tenant(slug: string): Promise<Oblien> {
  await client.namespaces.create({ name: slug, slug } as never);
  const res = await fetch(`${h.api}/keys`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret },
    body: JSON.stringify({ name: `${slug} key`, namespace: slug }),
  });
  assert.equal(res.status, 201);
  const key = await res.json() as { clientId: string; clientSecret: string };
  return new Oblien({ clientId: key.clientId, clientSecret: key.clientSecret, baseUrl: h.api });
}

test('a custom domain routes and gets a certificate only after its owner proves it with a DNS TXT record; another tenant cannot take a proven domain', { skip: needsRoot, timeout: 180_000 }, async () => {
  const [a, b] = [await tenant('domain-owner'), await tenant('domain-squatter')];
  const wsA = await a.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  const wsB = await b.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  await startServer(wsA.id, 3000);
  await startServer(wsB.id, 3000);
  const domain = 'owned.hearth-test.example';

  // No proof yet: pending, with the record to create; not routed; no certificate asked for.
  const claimed = await a.workspaces.domains.connect(wsA.id, { domain, port: 3000 }) as Record<string, any>;
  assert.equal(claimed.domain, domain);
  const notRouted = await viaEdge(domain);
  assert.equal(notRouted.status, 404, 'an unproven domain is not routed');
  assert.equal(claimed.ssl.status, 'none', 'no certificate is requested for an unproven domain');
  assert.equal(claimed.status, 'pending');
  assert.deepEqual([claimed.verification.type, claimed.verification.host], ['TXT', `_hearth-challenge.${domain}`]);
  assert.match(claimed.verification.value, /^hearth-verify=[a-z2-7]{32}$/);
  assert.equal(claimed.dns.ownership, false);
  const pendingInfo = await a.workspaces.domains.get(wsA.id) as Record<string, any>;
  assert.equal(pendingInfo.customDomain, domain);
  assert.equal(pendingInfo.status, 'pending');
  assert.equal(notRouted.headers['x-hearth-domain'], 'pending-verification');
  assert.match(notRouted.body, /not routed yet/);
  // Over HTTPS there is no certificate for it at all: the edge only has its preview wildcard to offer.
  await assert.rejects(viaEdge(domain, '/', { secure: true }), (e: any) => e.code === 'ERR_TLS_CERT_ALTNAME_INVALID');
  const verifyNow = await a.domain.verify({ domain, resource_id: wsA.id } as never) as Record<string, any>;
  assert.equal(verifyNow.ownership, false);
  assert.equal(verifyNow.required_records.txt.value, claimed.verification.value);
  assert.equal(((await client.domain.ssls()) as Record<string, any>).data.find((c: any) => c.domain === domain), undefined);
  assert.ok(!pebble.logs.join('').includes(domain), 'the ACME server never heard of the unproven domain');

  // Another tenant asking first does not hold the name; its own token differs, and A's record proves nothing for it.
  const squat = await b.workspaces.domains.connect(wsB.id, { domain, port: 3000 }) as Record<string, any>;
  assert.equal(squat.status, 'pending');
  assert.notEqual(squat.verification.value, claimed.verification.value);
  assert.equal((await viaEdge(domain)).status, 404);

  // The owner publishes the record on the (loopback) DNS and verifies: proven, routed, certificate flow as before.
  dns.txt.set(claimed.verification.host, [claimed.verification.value]);
  assert.equal(((await b.domain.verify({ domain, resource_id: wsB.id } as never)) as Record<string, any>).ownership, false, "A's record does not prove B's claim");
  await a.workspaces.domains.connect(wsA.id, { domain, port: 3000 });
  const verified = await a.domain.verify({ domain, resource_id: wsA.id } as never) as Record<string, any>;
  assert.equal(verified.ownership, true);
  const info = await waitUntil('the ACME certificate of the proven domain', async () => {
    const d = await a.workspaces.domains.get(wsA.id) as Record<string, any> | null;
    return d?.sslStatus === 'active' && d.sslExpiry ? d : false;
  }, 90_000, 500).catch(async (e) => { throw new Error(`${e.message}\n${pebble.logs.join('').slice(-3000)}`); });
  assert.equal(info.status, 'active');
  assert.equal(info.verification.verified, true);
  const root = await pebble.root();
  const got = await viaEdge(domain, '/', { secure: true, ca: root });
  assert.equal(got.status, 200);
  assert.match(got.body, /port 3000/);
  const routes = await a.domain.routes() as Record<string, any>;
  assert.equal(routes.data.find((r: any) => r.hostname === domain).target, `${wsA.id}:3000`);

  // B is refused now, by connect and by expose, and the domain stays A's.
  await assert.rejects(b.workspaces.domains.connect(wsB.id, { domain, port: 3000 }), (e: any) => e instanceof ConflictError && e.status === 409);
  await assert.rejects(b.workspaces.publicAccess.expose(wsB.id, { port: 3000, domain }), (e: any) => e.status === 409);
  assert.equal(await b.workspaces.domains.get(wsB.id), null);
  assert.equal(((await client.domain.routes()) as Record<string, any>).data.find((r: any) => r.hostname === domain).target, `${wsA.id}:3000`);
  await a.workspaces.delete(wsA.id);
  await b.workspaces.delete(wsB.id);
});

test('a sleeping workspace wakes on a request through the edge, and the request is answered', { skip: needsRoot, timeout: 120_000 }, async () => {
  const ws = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
  const rt = new Runtime({ token, baseUrl: h.runtime });
  await rt.files.write({ fullPath: '/app/server.js', content: WORKSPACE_SERVER_JS });
  // A workload comes back when the workspace starts again (plain exec processes do not).
  await client.workspaces.workloads.create(ws.id, { name: 'web', cmd: ['node', '/app/server.js'], env: { PORT: '3000' } } as never);
  const port = await client.workspaces.publicAccess.expose(ws.id, { port: 3000 }) as Record<string, any>;
  const host = hostOf(port.url);
  await waitUntil('the workload to serve', async () => (await viaEdge(host)).status === 200, 20_000, 200);
  // The aggregated details show what is live: the exposed port, the running workload, what sleep keeps.
  const details = await client.workspaces.getDetails(ws.id) as Record<string, any>;
  assert.deepEqual(details.public_access.ports, [3000]);
  assert.equal(details.network.public_access, true);
  assert.deepEqual(details.workloads.map((w: any) => [w.name, w.status]), [['web', 'running']]);
  assert.equal(details.lifecycle.snapshot_supported, false, 'a container keeps files, not memory, across sleep');
  assert.match(details.lifecycle.snapshot_unavailable_reason, /not memory/);
  await client.workspaces.lifecycle.setIdle(ws.id, { suspend_after: 2 } as never);
  await waitUntil('the workspace to fall asleep', async () => ((await client.workspaces.get(ws.id)) as any).status === 'sleeping', 30_000, 200);
  const t0 = Date.now();
  const woken = await viaEdge(host, '/', { secure: true });
  assert.equal(woken.status, 200, woken.body);
  assert.match(woken.body, /port 3000 GET/);
  assert.equal(((await client.workspaces.get(ws.id)) as any).status, 'running', `woke in ${Date.now() - t0} ms`);
  await client.workspaces.lifecycle.setIdle(ws.id, { suspend_after: 0 } as never);
  // A workspace stopped on purpose is not woken: a clear 503.
  await client.workspaces.stop(ws.id);
  const stopped = await viaEdge(host);
  assert.equal(stopped.status, 503);
  assert.equal(stopped.headers['retry-after'], '1');
  await client.workspaces.delete(ws.id);
});

/** The pid of the edge's HAProxy, from its pid file in the data dir. */
async function haproxyPid(): Promise<number> {
  return Number((await fs.readFile(path.join(h.dataDir, 'edge', 'haproxy', 'haproxy.pid'), 'utf8')).trim());
}

test('HTTP/2 over TLS (node:http2) reaches a workspace server', { skip: needsRoot, timeout: 120_000 }, async () => {
  const ws = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  await startServer(ws.id, 3000);
  const host = hostOf((await client.workspaces.publicAccess.expose(ws.id, { port: 3000 }) as Record<string, any>).url);
  const session = http2.connect(`https://127.0.0.1:${edgeHttps}`, { servername: host, ca: hearthCa });
  try {
    await new Promise((r, j) => { session.once('connect', r); session.once('error', j); });
    assert.equal((session.socket as tls.TLSSocket).alpnProtocol, 'h2');
    const got = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({ ':path': '/headers', ':authority': host });
      let status = 0;
      let body = '';
      req.on('response', (hd) => { status = Number(hd[':status']); });
      req.on('data', (c) => { body += c; });
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
    assert.equal(got.status, 200);
    const seen = JSON.parse(got.body);
    assert.equal(seen.host, host);
    assert.equal(seen['x-forwarded-proto'], 'https');
  } finally {
    session.close();
  }
  await client.workspaces.delete(ws.id);
});

test('kill -9 of hearthd: exposed ports keep serving; kill -9 of HAProxy: back within 1 s with every route', { skip: needsRoot, timeout: 180_000 }, async () => {
  const ws = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  await startServer(ws.id, 3000);
  const host = hostOf((await client.workspaces.publicAccess.expose(ws.id, { port: 3000, slug: 'survivor' }) as Record<string, any>).url);
  assert.equal((await viaEdge(host)).status, 200);
  const pid = await haproxyPid();
  await h.crashAndRestart(async () => {
    // hearthd is gone: HAProxy serves what is exposed, over HTTP and HTTPS.
    for (let i = 0; i < 5; i++) {
      assert.equal((await viaEdge(host)).status, 200);
      assert.equal((await viaEdge(host, '/', { secure: true })).status, 200);
    }
  });
  assert.equal(await haproxyPid(), pid, 'the restarted hearthd adopted the running HAProxy');
  assert.equal((await viaEdge(host, '/', { secure: true })).status, 200);

  process.kill(pid, 'SIGKILL');
  const t0 = Date.now();
  await waitUntil('the route back after HAProxy was killed', async () => (await viaEdge(host).catch(() => null))?.status === 200, 10_000, 10);
  const took = Date.now() - t0;
  assert.ok(took < 1000, `served again ${took} ms after kill -9`);
  assert.notEqual(await haproxyPid(), pid);
  assert.equal((await viaEdge(host, '/', { secure: true })).status, 200, 'and its certificates');
  await client.workspaces.delete(ws.id);
});

test('the access log records requests through the edge', { skip: needsRoot }, async () => {
  const log = await fs.readFile(path.join(h.dataDir, 'logs', 'edge-access.log'), 'utf8');
  const lines = log.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.some((l) => l.status === 200 && l.workspace && l.port === 3000 && typeof l.ms === 'number'));
  assert.ok(lines.some((l) => l.status === 404));
  assert.ok(lines.some((l) => l.status === 101 && l.upgrade));
});
