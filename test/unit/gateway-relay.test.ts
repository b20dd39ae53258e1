/**
 * The gateway in-process in front of the REAL agent (in-process too): the
 * relay, token handling, and how live sessions end — rotated token, stopped
 * workspace, vanished agent — each with the right WebSocket close code.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import pino from 'pino';
import WebSocket from 'ws';
import { Gateway } from '../../src/gateway/server.ts';
import { TokenSigner } from '../../src/auth/jwt.ts';
import type { Workspace } from '../../src/control/workspaces/row.ts';
import { openSqlite, type Db } from '../../src/store/db.ts';
import { ApiKeys, createApiKey } from '../../src/auth/keys.ts';
import { startTestAgent, type TestAgent } from '../helpers/agent-harness.ts';
import { waitUntil } from '../helpers/wait.ts';

let agent: TestAgent;
let gw: Gateway;
let base: string;
let app: http.Server;
let appPort: number;
let fakeAgentPort: number | undefined;
const seen: { url: string; headers: http.IncomingHttpHeaders }[] = [];
const signer = new TokenSigner('k'.repeat(48));
let db: Db;
let keys: ApiKeys;
/** The API key every token below is minted by (a real key in a real store). */
let issuerKey = '';
const row = { id: 'ws_a', state: 'running', runtimeEnabled: true, runtimeTokenGen: 1, slotIndex: 0, agentSecret: '', generation: 1 } as Workspace;

before(async () => {
  db = await openSqlite(':memory:');
  keys = new ApiKeys(db, signer);
  issuerKey = (await createApiKey(db, { name: 'minter', admin: false })).clientId;
  agent = await startTestAgent();
  row.agentSecret = agent.secret;
  gw = new Gateway({
    workspaces: { byId: async (id: string) => (id === row.id ? { ...row } : null) },
    host: { agentEndpoint: () => ({ ip: '127.0.0.1', port: fakeAgentPort ?? agent.agent.port }) },
    signer, issuers: keys, log: pino({ level: 'silent' }), sweepMs: 50,
  });
  await new Promise<void>((r) => gw.server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
  app = http.createServer((req, res) => { seen.push({ url: req.url ?? '', headers: req.headers }); res.end('app'); });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  appPort = (app.address() as AddressInfo).port;
});
after(async () => {
  await gw.close();
  await agent.close();
  app.close();
  await db.destroy();
});

const tokenFor = async (gen = row.runtimeTokenGen, ttl = 600, key = issuerKey) => (await signer.sign({ kind: 'runtime', ws: row.id, gen, issuer: { key, token: null } }, ttl)).token;

function openWs(url: string): Promise<{ ws: WebSocket; closed: Promise<{ code: number; reason: string }> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.on('open', () => resolve({ ws, closed }));
    ws.on('error', reject);
  });
}

test('HTTP through the gateway: agent secret swapped in, caller token never forwarded', async () => {
  const token = await tokenFor();
  const h = await fetch(`${base}/health`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(h.status, 200);
  assert.equal((await h.json()).status, 'ok');
  const viaQuery = await fetch(`${base}/proxy/p?token=${encodeURIComponent(token)}&x_oblien_target=${appPort}&q=1`);
  assert.equal(await viaQuery.text(), 'app');
  const last = seen[seen.length - 1]!;
  assert.equal(last.url, '/p?q=1');
  assert.equal(last.headers.authorization, undefined, 'neither the runtime token nor the agent secret reaches the app');
  const none = await fetch(`${base}/health`);
  assert.equal(none.status, 401);
  assert.deepEqual(Object.keys(await none.json()).sort(), ['code', 'error', 'message', 'success']);
  const bad = await fetch(`${base}/health`, { headers: { authorization: 'Bearer not.a.jwt' } });
  assert.equal((await bad.json()).code, 'invalid_credentials');
  const expired = await fetch(`${base}/health`, { headers: { authorization: `Bearer ${await tokenFor(1, -1)}` } });
  assert.equal(expired.status, 401);
});

test('a live WebSocket ends with 1008 the moment its token is rotated; new sockets with the old token are refused', async () => {
  const token = await tokenFor();
  const { ws, closed } = await openWs(`${base.replace('http', 'ws')}/ws?token=${encodeURIComponent(token)}`);
  const pong = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
  ws.send(JSON.stringify({ type: 'ping' }));
  assert.match(await pong, /"type":"pong"/, 'frames flow both ways');
  row.runtimeTokenGen = 2;
  const t = Date.now();
  assert.deepEqual(await closed, { code: 1008, reason: 'runtime token revoked' });
  assert.ok(Date.now() - t < 1000);
  await assert.rejects(openWs(`${base.replace('http', 'ws')}/ws?token=${encodeURIComponent(token)}`), /401/);
  await waitUntil('the session registry to empty', async () => gw.sessions.size === 0, 2000);
});

test('a live WebSocket ends with 1008 when the API key that minted its token is revoked; tokens without an issuer are refused', async () => {
  const minter = (await createApiKey(db, { name: 'short-lived', admin: false })).clientId;
  const token = await tokenFor(row.runtimeTokenGen, 600, minter);
  const { ws, closed } = await openWs(`${base.replace('http', 'ws')}/ws?token=${encodeURIComponent(token)}`);
  const pong = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
  ws.send(JSON.stringify({ type: 'ping' }));
  assert.match(await pong, /"type":"pong"/);
  assert.equal(await keys.revoke(minter), true);
  const t = Date.now();
  assert.deepEqual(await closed, { code: 1008, reason: 'runtime token revoked' });
  assert.ok(Date.now() - t < 1000);
  assert.equal((await fetch(`${base}/health`, { headers: { authorization: `Bearer ${token}` } })).status, 401, 'HTTP with it is refused too');
  const anonymous = (await signer.sign({ kind: 'runtime', ws: row.id, gen: row.runtimeTokenGen }, 600)).token;
  assert.equal((await fetch(`${base}/health`, { headers: { authorization: `Bearer ${anonymous}` } })).status, 401, 'no issuer: refused');
  assert.equal((await fetch(`${base}/health`, { headers: { authorization: `Bearer ${await tokenFor()}` } })).status, 200, 'a live issuer still works');
});

test('a stopped workspace closes its sockets with 1001 and refuses new ones with 503', async () => {
  const token = await tokenFor();
  const { closed } = await openWs(`${base.replace('http', 'ws')}/ws?token=${encodeURIComponent(token)}`);
  row.state = 'stopped';
  assert.deepEqual(await closed, { code: 1001, reason: 'workspace stopped' });
  const r = await fetch(`${base}/health`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(r.status, 503);
  assert.equal((await r.json()).code, 'workspace_unavailable');
  row.state = 'running';
});

test('an in-flight stream is cut when the token is revoked', async () => {
  const token = await tokenFor();
  const res = await fetch(`${base}/exec/stream`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ cmd: ['sh', '-c', 'while :; do echo tick; sleep 0.05; done'] }),
  });
  const reader = res.body!.getReader();
  await reader.read();
  row.runtimeTokenGen++;
  await assert.rejects((async () => { for (;;) { const { done } = await reader.read(); if (done) throw new Error('ended cleanly instead of being cut'); } })(), /terminated|ended cleanly|other side closed|aborted/);
  const fresh = await tokenFor();
  const list = await (await fetch(`${base}/exec`, { headers: { authorization: `Bearer ${fresh}` } })).json();
  assert.ok(list.tasks.some((t: { status: string }) => t.status === 'running'), 'the task itself runs on (spec §22.5)');
  await fetch(`${base}/exec`, { method: 'DELETE', headers: { authorization: `Bearer ${fresh}` } });
});

let tokenNow: string | undefined;
test('the agent going away: the client gets a close frame, not a reset', async () => {
  const token = await tokenFor();
  const { closed } = await openWs(`${base.replace('http', 'ws')}/ws?token=${encodeURIComponent(token)}`);
  await agent.close();
  const c = await closed;
  assert.equal(c.code, 1001, `got ${JSON.stringify(c)}`);
  agent = await startTestAgent();
  row.agentSecret = agent.secret;
  row.generation++;
  tokenNow = await tokenFor();
  const again = await fetch(`${base}/health`, { headers: { authorization: `Bearer ${tokenNow}` } });
  assert.equal(again.status, 200, 'a restarted agent (new generation) is reached on a fresh connection');
});

test('an agent that dies without a close frame: the gateway sends 1001 itself, after the last frame', async () => {
  // A raw stand-in for a SIGKILLed agent: answers the upgrade, sends one frame, then vanishes (FIN, no close frame).
  const raw = net.createServer((sock) => {
    sock.once('data', () => {
      sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n');
      sock.end(Buffer.from([0x82, 3, 1, 0x68, 0x69]));
    });
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', () => r()));
  fakeAgentPort = (raw.address() as AddressInfo).port;
  try {
    // ws checks Sec-WebSocket-Accept, so read the relayed bytes with a plain socket.
    const gwPort = Number(new URL(base).port);
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      const c = net.connect(gwPort, '127.0.0.1', () => {
        c.write(`GET /ws?token=${encodeURIComponent(tokenNow!)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      const got: Buffer[] = [];
      c.on('data', (d) => got.push(d));
      c.on('end', () => resolve(Buffer.concat(got)));
      c.on('error', reject);
    });
    const head = bytes.indexOf('\r\n\r\n') + 4;
    assert.match(bytes.subarray(0, head).toString(), /^HTTP\/1\.1 101/);
    const frames = bytes.subarray(head);
    assert.deepEqual([...frames.subarray(0, 5)], [0x82, 3, 1, 0x68, 0x69], 'the agent frame passes untouched');
    assert.deepEqual([...frames.subarray(5, 9)], [0x88, 27, 0x03, 0xe9], 'then a close frame with 1001');
    assert.equal(frames.subarray(9).toString(), 'workspace agent went away');
  } finally {
    fakeAgentPort = undefined;
    raw.close();
  }
});

test('an upgrade whose agent cannot be reached gets 503 with the contract body, not a dropped connection', async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  fakeAgentPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  try {
    const status = await new Promise<{ code: number; body: string }>((resolve, reject) => {
      const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?token=${encodeURIComponent(tokenNow!)}`);
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
      });
      ws.on('open', () => reject(new Error('opened')));
      ws.on('error', () => { /* the unexpected-response path answers */ });
    });
    assert.equal(status.code, 503);
    const body = JSON.parse(status.body) as Record<string, unknown>;
    assert.deepEqual([body.success, body.code], [false, 'workspace_unavailable']);
  } finally {
    fakeAgentPort = undefined;
  }
});
