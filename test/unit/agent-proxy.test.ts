/** Guest agent: loopback proxy for HTTP and WebSocket (spec §22.10). */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { startTestAgent, WsRecorder, type TestAgent } from '../helpers/agent-harness.ts';

let t: TestAgent;
let upstream: Server;
let port: number;
let seen: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[] = [];

before(async () => {
  t = await startTestAgent();
  upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      if (req.url?.startsWith('/sse')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: one\n\n');
        setTimeout(() => res.end('data: two\n\n'), 50);
        return;
      }
      res.writeHead(418, { 'content-type': 'text/plain', 'x-upstream': 'yes' });
      res.end(`echo:${req.method}:${req.url}:${Buffer.concat(chunks).toString()}`);
    });
  });
  const wss = new WebSocketServer({ server: upstream });
  wss.on('connection', (ws, req) => ws.on('message', (m) => ws.send(`echo(${req.url}):${m.toString()}`)));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  port = (upstream.address() as AddressInfo).port;
});
after(async () => {
  await t.close();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});

test('header target: method, path, query and body pass; status and headers come back; credentials stripped', async () => {
  seen = [];
  const res = await t.fetch(`/proxy/api/items?a=1&token=${t.secret}`, {
    method: 'POST',
    headers: { 'x-oblien-proxy-target': String(port), 'content-type': 'text/plain', 'x-custom': 'kept' },
    body: 'payload',
  });
  assert.equal(res.status, 418);
  assert.equal(res.headers.get('x-upstream'), 'yes');
  assert.equal(await res.text(), 'echo:POST:/api/items?a=1:payload');
  const req = seen[0];
  assert.equal(req?.headers.authorization, undefined);
  assert.equal(req?.headers['x-oblien-proxy-target'], undefined);
  assert.equal(req?.headers['x-custom'], 'kept');
  assert.equal(req?.headers.host, `127.0.0.1:${port}`);
});

test('query target and path form', async () => {
  const q = await t.fetch(`/proxy/x?x_oblien_target=localhost:${port}&b=2`);
  assert.equal(await q.text(), 'echo:GET:/x?b=2:');
  const p = await t.fetch(`/proxy/${port}/deep/path?c=3`);
  assert.equal(await p.text(), 'echo:GET:/deep/path?c=3:');
  const root = await t.fetch(`/proxy/${port}`);
  assert.equal(await root.text(), 'echo:GET:/:');
  const viaTarget = await t.fetch(`/runtimes/default/proxy/${port}/t`);
  assert.equal(await viaTarget.text(), 'echo:GET:/t:');
});

test('streaming responses pass through as they come (SSE)', async () => {
  const res = await t.fetch('/proxy/sse', { headers: { 'x-oblien-proxy-target': String(port) } });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  assert.equal(first, 'data: one\n\n', 'first event arrives before the upstream finished');
  let rest = '';
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    rest += new TextDecoder().decode(value);
  }
  assert.equal(rest, 'data: two\n\n');
});

test('refusals: non-loopback host, bad port, missing target, nothing listening, no auth', async () => {
  const remote = await t.fetch('/proxy/x', { headers: { 'x-oblien-proxy-target': `10.0.0.1:${port}` } });
  assert.equal(remote.status, 400);
  assert.match(((await remote.json()) as { message: string }).message, /loopback/);
  assert.equal((await t.fetch('/proxy/x', { headers: { 'x-oblien-proxy-target': '70000' } })).status, 400);
  assert.equal((await t.fetch('/proxy/notaport/x')).status, 400);
  // A port nothing listens on: bind and close one to find it.
  const tmp = createServer();
  await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', () => r()));
  const dead = (tmp.address() as AddressInfo).port;
  await new Promise<void>((r) => tmp.close(() => r()));
  const gone = await t.fetch(`/proxy/${dead}/x`);
  assert.equal(gone.status, 502);
  assert.equal(((await gone.json()) as { code: string }).code, 'bad_gateway');
  assert.equal((await fetch(`${t.url}/proxy/${port}/x`)).status, 401);
});

test('WebSocket through the proxy (query token and target, as rt.proxy(p).ws() sends)', async () => {
  const url = t.wsUrl(`/proxy/chat?x_oblien_target=${port}&room=1`);
  const rec = await WsRecorder.open(url);
  rec.ws.send('hi');
  const reply = await rec.waitFor(() => rec.frames.find((f) => f.data.toString().startsWith('echo')), 'echo');
  assert.equal(reply.data.toString(), 'echo(/chat?room=1):hi');
  rec.close();
  await assert.rejects(WsRecorder.open(`${t.url.replace('http', 'ws')}/proxy/chat?x_oblien_target=${port}`), /401/);
});
