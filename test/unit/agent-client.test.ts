/**
 * The one agent client (host/agent-client.ts) against a stand-in agent on
 * loopback: every call carries the secret, error answers in the protocol's
 * shape become AgentRequestError, no answer is AgentUnreachable, /health and
 * /ws; and the protocol's SSE parser (core/agent-protocol/sse.ts) that the
 * relay and the SSH gateway read streams with.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { AgentRequestError, AgentUnreachable, agentHealth, agentRequest, agentRequestError, agentWebSocket, readAgentBody, type AgentTarget } from '../../src/host/agent-client.ts';
import { AgentError } from '../../src/core/agent-protocol/errors.ts';
import { SseParser, dataFrame, eventFrame } from '../../src/core/agent-protocol/sse.ts';
import { AGENT_ROUTES, agentPath } from '../../src/core/agent-protocol.ts';

const SECRET = 's3cret';
let server: http.Server;
let wss: WebSocketServer;
let target: AgentTarget;
const seen: { method: string; url: string; auth: string | undefined; type: string | undefined; body: string }[] = [];

before(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, type: req.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') });
      if (req.headers.authorization !== `Bearer ${SECRET}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify(new AgentError('unauthorized', 'bad secret').toBody()));
        return;
      }
      if (req.url === '/health') return void res.writeHead(200).end('{"ok":true}');
      if (req.url === '/missing') return void res.writeHead(404).end(JSON.stringify(new AgentError('not_found', 'no such workload', { kind: 'workload', id: 'w1' }).toBody()));
      if (req.url === '/text') return void res.writeHead(502).end('upstream said no');
      if (req.url === '/slow') return; // never answers
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ echoed: true }));
    });
  });
  wss = new WebSocketServer({ server, path: '/ws' });
  wss.on('connection', (ws, req) => ws.send(String(req.headers.authorization)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  target = { ip: '127.0.0.1', port: (server.address() as AddressInfo).port, secret: SECRET };
});

after(async () => {
  wss.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('agent client', () => {
  const agent = new http.Agent({ keepAlive: false });

  test('a call carries the Bearer secret and a JSON body with its type', async () => {
    const res = await agentRequest(target, { method: 'POST', path: '/x', body: { a: 1 }, agent, timeoutMs: 5000 }).response;
    assert.deepEqual(await readAgentBody(res), { status: 200, json: { echoed: true } });
    const last = seen.at(-1)!;
    assert.equal(last.auth, `Bearer ${SECRET}`);
    assert.equal(last.type, 'application/json');
    assert.equal(last.body, '{"a":1}');
  });

  test('a bodiless call sends no content type unless asked to', async () => {
    await readAgentBody(await agentRequest(target, { method: 'GET', path: '/y', agent, timeoutMs: 5000 }).response);
    assert.equal(seen.at(-1)!.type, undefined);
    await readAgentBody(await agentRequest(target, { method: 'GET', path: '/y', agent, timeoutMs: 5000, alwaysContentType: true }).response);
    assert.equal(seen.at(-1)!.type, 'application/json');
  });

  test('an error answer in the protocol shape keeps its status, code, message and details', async () => {
    const { status, json } = await readAgentBody(await agentRequest(target, { method: 'GET', path: '/missing', agent, timeoutMs: 5000 }).response);
    const e = agentRequestError(status, json);
    assert.ok(e instanceof AgentRequestError);
    assert.equal(e.status, 404);
    assert.equal(e.code, 'not_found');
    assert.equal(e.message, 'no such workload');
    assert.deepEqual(e.details, { kind: 'workload', id: 'w1' });
  });

  test('an answer that is not JSON keeps the start of its text as the message', async () => {
    const { status, json } = await readAgentBody(await agentRequest(target, { method: 'GET', path: '/text', agent, timeoutMs: 5000 }).response);
    assert.equal(status, 502);
    assert.equal(agentRequestError(status, json).message, 'upstream said no');
    assert.equal(agentRequestError(500, null).message, 'workspace agent answered HTTP 500');
    assert.equal(agentRequestError(500, null, 'agent answered 500').message, 'agent answered 500');
  });

  test('no answer within the bound is AgentUnreachable', async () => {
    await assert.rejects(agentRequest(target, { method: 'GET', path: '/slow', agent, timeoutMs: 200 }).response, (e: Error) => e instanceof AgentUnreachable && /no answer within 200 ms/.test(e.message));
  });

  test('a refused connection is AgentUnreachable, not retryable', async () => {
    const closed = await new Promise<number>((r) => {
      const s = http.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as AddressInfo).port; s.close(() => r(p)); });
    });
    await assert.rejects(agentRequest({ ...target, port: closed }, { method: 'GET', path: '/x', agent, timeoutMs: 2000, connectTimeoutMs: 2000 }).response,
      (e: AgentUnreachable) => e instanceof AgentUnreachable && /ECONNREFUSED/.test(e.message) && e.retryable === false);
  });

  test('health is true for a 200, else why not', async () => {
    assert.equal(await agentHealth(target, agent), true);
    assert.equal(await agentHealth({ ...target, secret: 'wrong' }, agent), 'HTTP 401');
  });

  test('the /ws socket is opened with the secret', async () => {
    const ws = agentWebSocket(target);
    const first = await new Promise<string>((resolve, reject) => { ws.once('message', (d) => resolve(String(d))); ws.once('error', reject); });
    ws.close();
    assert.equal(first, `Bearer ${SECRET}`);
  });
});

describe('SSE parser', () => {
  test('reads both shapes fed in arbitrary pieces, skipping comments and bad lines', () => {
    const text = `: ping\n\n${dataFrame({ a: 1 })}${eventFrame('stdout', { data: 'aGk=' })}data: not json\n\ndata: {"event":"exit","exit_code":0}\r\n\r\n`;
    const p = new SseParser();
    const out = [];
    for (let i = 0; i < text.length; i += 3) out.push(...p.feed(text.slice(i, i + 3)));
    assert.deepEqual(out, [
      { event: 'message', data: { a: 1 } },
      { event: 'stdout', data: { data: 'aGk=' } },
      { event: 'message', data: { event: 'exit', exit_code: 0 } },
    ]);
  });

  test('an event name applies to its own data line only', () => {
    const p = new SseParser();
    assert.deepEqual(p.feed('event: exit\ndata: {"x":1}\ndata: {"y":2}\n\n'), [{ event: 'exit', data: { x: 1 } }, { event: 'message', data: { y: 2 } }]);
  });
});

describe('agent routes', () => {
  test('a pattern is filled segment by segment, encoded, and a missing value is refused', () => {
    assert.equal(agentPath(AGENT_ROUTES.execInput, { taskId: 'ab12' }), '/exec/ab12/input');
    assert.equal(agentPath(AGENT_ROUTES.terminal, { id: 3 }), '/terminals/3');
    assert.equal(agentPath(AGENT_ROUTES.execTask, { taskId: 'a/b' }), '/exec/a%2Fb');
    assert.throws(() => agentPath(AGENT_ROUTES.execTask, {}), /no value for :taskId/);
  });
});
