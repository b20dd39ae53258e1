/**
 * Data-plane security through the gateway of a real `hearth serve`, driven
 * with the official SDK: a token reaches only its own workspace; expired,
 * rotated, disabled, forged and control-plane tokens are refused at once,
 * on HTTP and on the WebSocket (`?token=`), and live sessions end when
 * their token is revoked or the workspace stops; malformed WebSocket
 * frames and unknown messages never take the agent down.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import WebSocket from 'ws';
import { AuthenticationError, Oblien, OblienError, Runtime } from 'oblien';
import { TokenSigner } from '../../src/auth/jwt.ts';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';
import { WsRecorder, checkRuntimeContract, runtimeFor } from '../helpers/runtime-sdk.ts';

let h: HearthInstance;
let client: Oblien;
let contract: ReturnType<typeof checkRuntimeContract>;
let A: { id: string; rt: Runtime; token: string };
let B: { id: string; rt: Runtime; token: string };

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  contract = checkRuntimeContract(h.runtime);
  const [a, b] = await Promise.all(['alpha', 'beta'].map((name) => client.workspaces.create({ name, image: 'debian-12', config: { ttl: '15m' } } as never) as Promise<Record<string, any>>));
  A = { id: a!.id, ...(await runtimeFor(client, h, a!.id)) };
  B = { id: b!.id, ...(await runtimeFor(client, h, b!.id)) };
});
after(async () => {
  contract?.restore();
  if (h) await h.stop();
});

const wsUrl = (token: string, p = '/ws') => `${h.runtime.replace(/^http/, 'ws')}${p}?token=${encodeURIComponent(token)}`;
const claims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { ws: string; gen: number; exp: number; issuer: { key: string; token: string | null } };
const rejectsAuth = (p: Promise<unknown>, what: string) => assert.rejects(p, (e: unknown) => e instanceof AuthenticationError && e.status === 401, what);

/** The WebSocket upgrade's HTTP answer for `url` (101 = accepted). */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('open', () => { ws.close(); resolve(101); });
    ws.on('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode ?? 0); });
    ws.on('error', (e) => { if (!/Unexpected server response/.test(e.message)) reject(e); });
  });
}

/** The signing key, read from hearthd's own store, to mint tokens with chosen claims (expired ones). */
function signer(): TokenSigner {
  const db = new SQLite(path.join(h.dataDir, 'hearth.db'), { readonly: true });
  try {
    const row = db.prepare("SELECT value FROM settings WHERE key = 'jwt_secret'").get() as { value: string };
    return new TokenSigner(row.value);
  } finally {
    db.close();
  }
}

test('a runtime token reaches only its own workspace, on HTTP and on the WebSocket', { skip: needsRoot }, async () => {
  await A.rt.files.write({ fullPath: '/marker', content: 'I am A' });
  await B.rt.files.write({ fullPath: '/marker', content: 'I am B' });
  assert.equal((await A.rt.files.read({ filePath: '/marker' })).content, 'I am A');
  assert.equal((await B.rt.files.read({ filePath: '/marker' })).content, 'I am B');
  assert.equal((await A.rt.exec.run(['hostname'])).stdout, 'alpha\n');
  assert.equal((await B.rt.exec.run(['hostname'])).stdout, 'beta\n');
  // Data-plane URLs name no workspace: nothing a caller adds can steer a request elsewhere.
  const steer = await fetch(`${h.runtime}/files/read?path=/marker&workspace_id=${B.id}&token=${encodeURIComponent(B.token)}`, {
    headers: { authorization: `Bearer ${A.token}`, 'x-workspace-id': B.id, host: B.id },
  });
  assert.equal((await steer.json()).content, 'I am A', 'the Authorization header decides, and it names A');

  // The WebSocket multiplexes only its own workspace's terminals.
  const wsA = await WsRecorder.open(A.rt);
  const tB = await B.rt.terminal.create({ cmd: ['/bin/sh'] });
  const tA = await A.rt.terminal.create({ cmd: ['/bin/sh'] });
  const wsB = await WsRecorder.open(B.rt);
  wsB.sock.writeTerminalInput(tB.id, 'echo from-$((1+1))-B\n');
  await wsB.waitText(tB.id, 'from-2-B');
  wsA.sock.writeTerminalInput(tA.id, 'echo from-$((1+1))-A\n');
  await wsA.waitText(tA.id, 'from-2-A');
  assert.ok(![...wsA.output.values()].some((b) => b.toString().includes('from-2-B')), "A's socket never sees B's terminals");
  assert.deepEqual((await A.rt.terminal.list()).map((t) => t.id), [tA.id]);
  wsA.close();
  wsB.close();
  await A.rt.terminal.close(tA.id);
  await B.rt.terminal.close(tB.id);

  // Straight at the agents: each accepts only its own secret; gateway JWTs mean nothing there.
  const rawA = await client.workspaces.apiAccess.rawToken(A.id) as { token: string; ip: string; port: number };
  const rawB = await client.workspaces.apiAccess.rawToken(B.id) as { token: string; ip: string; port: number };
  assert.notEqual(rawA.token, rawB.token);
  assert.equal((await new Runtime({ token: rawA.token, baseUrl: `http://${rawA.ip}:${rawA.port}` }).files.read({ filePath: '/marker' })).content, 'I am A');
  await rejectsAuth(new Runtime({ token: rawA.token, baseUrl: `http://${rawB.ip}:${rawB.port}` }).files.read({ filePath: '/marker' }), "A's secret at B's agent");
  await rejectsAuth(new Runtime({ token: A.token, baseUrl: `http://${rawA.ip}:${rawA.port}` }).health().then((ok) => { if (!ok) throw new AuthenticationError(); }), 'a gateway JWT at the agent');
  assert.equal(await upgradeStatus(`ws://${rawB.ip}:${rawB.port}/ws?token=${rawA.token}`), 401);
  // …and the agent secret is no gateway token.
  await rejectsAuth(new Runtime({ token: rawA.token, baseUrl: h.runtime }).files.read({ filePath: '/marker' }), 'a raw agent secret at the gateway');

  // A token whose payload was edited to name B fails its signature.
  const [hd, , sig] = A.token.split('.');
  const forgedPayload = Buffer.from(JSON.stringify({ ...claims(A.token), ws: B.id })).toString('base64url');
  await rejectsAuth(new Runtime({ token: `${hd}.${forgedPayload}.${sig}`, baseUrl: h.runtime }).exec.run(['true']), 'edited claims');
  assert.equal(await upgradeStatus(wsUrl(`${hd}.${forgedPayload}.${sig}`)), 401);
});

test('missing, malformed, forged, control-plane and expired tokens are refused at once (HTTP and WebSocket)', { skip: needsRoot }, async () => {
  const none = await fetch(`${h.runtime}/files/read?path=/marker`);
  assert.equal(none.status, 401);
  assert.equal((await none.json()).code, 'missing_credentials');
  assert.equal(await upgradeStatus(`${h.runtime.replace(/^http/, 'ws')}/ws`), 401);
  await rejectsAuth(new Runtime({ token: 'garbage', baseUrl: h.runtime }).exec.run(['true']), 'garbage');
  await rejectsAuth(new Runtime({ token: (await new TokenSigner('x'.repeat(48)).sign({ kind: 'runtime', ws: A.id, gen: claims(A.token).gen, issuer: claims(A.token).issuer }, 600)).token, baseUrl: h.runtime }).exec.run(['true']), 'signed with another key');
  const access = await client.tokens.create({ scope: 'workspace', workspaceId: A.id, ttl: 600 } as never) as { token: string };
  await rejectsAuth(new Runtime({ token: access.token, baseUrl: h.runtime }).exec.run(['true']), 'a control-plane token is not a runtime token');

  const keys = signer();
  const expired = (await keys.sign({ kind: 'runtime', ws: A.id, gen: claims(A.token).gen, issuer: claims(A.token).issuer }, -1)).token;
  await rejectsAuth(new Runtime({ token: expired, baseUrl: h.runtime }).exec.run(['true']), 'expired');
  assert.equal(await upgradeStatus(wsUrl(expired)), 401);

  // A token that expires while in use: accepted, then refused the moment it expires; its live socket ends too.
  const brief = (await keys.sign({ kind: 'runtime', ws: A.id, gen: claims(A.token).gen, issuer: claims(A.token).issuer }, 2)).token;
  const rt = new Runtime({ token: brief, baseUrl: h.runtime });
  assert.equal((await rt.exec.run(['echo', 'ok'])).stdout, 'ok\n');
  const live = await WsRecorder.open(rt);
  await waitUntil('the token to expire', async () => Date.now() / 1000 > claims(brief).exp, 5000, 50);
  await rejectsAuth(rt.exec.run(['true']), 'just expired (the cached verification must not outlive exp)');
  const closed = await live.waitClose(5000);
  assert.deepEqual(closed, { code: 1008, reason: 'runtime token revoked' });
});

test('a runtime token dies with the scoped token that minted it: HTTP refused, live socket ended', { skip: needsRoot }, async () => {
  const scoped = await client.tokens.create({ scope: 'workspace', workspaceId: B.id, ttl: 600, permissions: { runtime: true } } as never) as { token: string };
  const asScoped = new Oblien({ token: scoped.token, baseUrl: h.api });
  const { token } = await asScoped.workspaces.apiAccess.getToken(B.id) as { token: string };
  assert.equal(claims(token).issuer.token, (claims(scoped.token) as unknown as { jti: string }).jti, 'the runtime token names the scoped token that minted it');
  const rt = new Runtime({ token, baseUrl: h.runtime });
  assert.equal((await rt.exec.run(['echo', 'ok'])).stdout, 'ok\n');
  const live = await WsRecorder.open(rt);
  const revoked = await fetch(`${h.api}/tokens/revoke`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret }, body: JSON.stringify({ token: scoped.token }) });
  assert.equal((await revoked.json()).revoked, true);
  await rejectsAuth(rt.exec.run(['true']), 'its issuer was revoked');
  assert.deepEqual(await live.waitClose(5000), { code: 1008, reason: 'runtime token revoked' });
  assert.equal((await B.rt.exec.run(['echo', 'still'])).stdout, 'still\n', 'tokens minted by the live admin key are untouched');
});

test('rotateToken: the old token stops at once, live sockets end, the workspace keeps running', { skip: needsRoot }, async () => {
  const old = A.token;
  const live = await WsRecorder.open(A.rt);
  const term = await A.rt.terminal.create({ cmd: ['/bin/sh'] });
  live.sock.writeTerminalInput(term.id, 'echo before-$((2+3))\n');
  await live.waitText(term.id, 'before-5');
  const rotated = await client.workspaces.apiAccess.rotateToken(A.id) as { token: string };
  assert.notEqual(rotated.token, old);
  await rejectsAuth(A.rt.exec.run(['true']), 'the rotated token, right after rotation');
  assert.equal(await upgradeStatus(wsUrl(old)), 401);
  assert.deepEqual(await live.waitClose(5000), { code: 1008, reason: 'runtime token revoked' });
  A.rt = new Runtime({ token: rotated.token, baseUrl: h.runtime });
  A.token = rotated.token;
  const sb = await A.rt.terminal.scrollback(term.id);
  assert.match(Buffer.from(sb.scrollback, 'base64').toString(), /before-5/, 'same agent, same terminal: only the credential changed');
  await A.rt.terminal.close(term.id);
  // Rotating A never touches B.
  assert.equal((await B.rt.exec.run(['echo', 'B fine'])).stdout, 'B fine\n');
});

test('rotateToken and disable also end the raw token: the agent takes a new secret, the old one is refused at once', { skip: needsRoot }, async () => {
  const at = (raw: { token: string; ip: string; port: number }) => new Runtime({ token: raw.token, baseUrl: `http://${raw.ip}:${raw.port}` });
  const before = await client.workspaces.apiAccess.rawToken(A.id) as { token: string; ip: string; port: number };
  assert.equal((await at(before).exec.run(['echo', 'raw'])).stdout, 'raw\n');
  const rotated = await client.workspaces.apiAccess.rotateToken(A.id) as { token: string };
  A.rt = new Runtime({ token: rotated.token, baseUrl: h.runtime });
  A.token = rotated.token;
  await rejectsAuth(at(before).exec.run(['true']), 'the raw token from before the rotation');
  const after = await client.workspaces.apiAccess.rawToken(A.id) as { token: string; ip: string; port: number };
  assert.notEqual(after.token, before.token);
  assert.equal((await at(after).exec.run(['echo', 'new raw'])).stdout, 'new raw\n');
  assert.equal((await A.rt.exec.run(['echo', 'gateway'])).stdout, 'gateway\n', 'hearthd talks to the agent with the new secret');
  await client.workspaces.apiAccess.disable(A.id);
  await rejectsAuth(at(after).exec.run(['true']), 'the raw token after disable');
  ({ rt: A.rt, token: A.token } = await runtimeFor(client, h, A.id));
  assert.equal((await A.rt.exec.run(['echo', 'back'])).stdout, 'back\n');
  // The new secret outlives a restart of the workspace (it is the stored one).
  await client.workspaces.restart(A.id);
  assert.equal((await A.rt.exec.run(['echo', 'restarted'])).stdout, 'restarted\n');
  // A paused agent cannot take a new secret: a rotation then keeps the stored one, so hearthd still reaches it after resume.
  await client.workspaces.pause(A.id);
  const whilePaused = await client.workspaces.apiAccess.rotateToken(A.id) as { token: string };
  await client.workspaces.resume(A.id);
  A.rt = new Runtime({ token: whilePaused.token, baseUrl: h.runtime });
  A.token = whilePaused.token;
  assert.equal((await A.rt.exec.run(['echo', 'resumed'])).stdout, 'resumed\n', 'hearthd is not cut off from a rotated paused agent');
});

test('disable revokes, enable issues a working token; the disabled one stays dead', { skip: needsRoot }, async () => {
  const before = A.token;
  await client.workspaces.apiAccess.disable(A.id);
  assert.equal((await client.workspaces.apiAccess.status(A.id) as { enabled: boolean }).enabled, false);
  await rejectsAuth(A.rt.exec.run(['true']), 'disabled');
  assert.equal(await upgradeStatus(wsUrl(before)), 401);
  await assert.rejects(client.workspaces.apiAccess.getToken(A.id), (e: unknown) => e instanceof OblienError && e.status === 403);
  ({ rt: A.rt, token: A.token } = await runtimeFor(client, h, A.id));
  assert.equal((await A.rt.exec.run(['echo', 'again'])).stdout, 'again\n');
  await rejectsAuth(new Runtime({ token: before, baseUrl: h.runtime }).exec.run(['true']), 'a token from before the disable');
});

test('malformed WebSocket frames, unknown messages and oversized messages: clear outcomes, the agent keeps serving', { skip: needsRoot }, async () => {
  const term = await A.rt.terminal.create({ cmd: ['/bin/sh'] });
  const good = await WsRecorder.open(A.rt);
  const open = (): Promise<{ ws: WebSocket; got: string[]; closed: Promise<{ code: number; reason: string }> }> => new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(A.token));
    const got: string[] = [];
    ws.on('message', (d, binary) => { if (!binary) got.push(d.toString()); });
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.on('open', () => resolve({ ws, got, closed }));
    ws.on('error', reject);
  });

  // Garbage the application layer must ignore: bad JSON, wrong shapes, unknown channels and types, bad ids.
  const s = await open();
  for (const junk of ['not json', '[]', 'null', '42', '{"channel":"terminal","type":"resize","id":"999","cols":10,"rows":10}',
    '{"type":"resize","id":"x","cols":"wide"}', '{"channel":"nope","type":"explode"}', '{"channel":"terminal","type":"bogus","id":"1"}',
    `{"channel":"terminal","type":"resize","id":"${term.id}","cols":-5,"rows":1e9}`]) s.ws.send(junk);
  s.ws.send(Buffer.from([Number(term.id)])); // a binary frame with no payload
  s.ws.send(Buffer.from([250, 0x41, 0x42])); // input for a terminal that does not exist
  s.ws.send(JSON.stringify({ type: 'ping' }));
  await waitUntil('the pong after the junk', async () => s.got.some((m) => JSON.parse(m).type === 'pong'), 5000);
  // The SDK's own sendJSON: unknown messages are ignored, the socket stays up.
  good.sock.sendJSON({ channel: 'mystery', type: 'launch', payload: [1, 2, 3] });
  good.sock.sendJSON({ channel: 'system', type: 'ping' });
  await waitUntil('the SDK socket to see its pong', async () => good.messages.some((m) => m.type === 'pong'), 5000);
  assert.equal(good.sock.connected, true);
  good.sock.writeTerminalInput(term.id, 'stty size; echo alive-$((6*7))\n');
  await good.waitText(term.id, /\d+ \d+\r\nalive-42/, 5000);

  // Protocol violations: the agent closes that one socket with the RFC code; nothing else is affected.
  const bad = await open();
  (bad.ws as unknown as { _socket: import('node:net').Socket })._socket.write(Buffer.from([0x83, 0x80, 1, 2, 3, 4])); // reserved opcode 3
  assert.equal((await bad.closed).code, 1002);
  const big = await open();
  big.ws.send(Buffer.alloc(17 * 1024 * 1024, 1));
  assert.equal((await big.closed).code, 1009, 'over the 16 MiB message limit');

  s.ws.send(JSON.stringify({ type: 'ping' }));
  await waitUntil('the first junk socket to still answer', async () => s.got.filter((m) => JSON.parse(m).type === 'pong').length >= 2, 5000);
  good.sock.writeTerminalInput(term.id, 'echo still-$((7*6))\n');
  await good.waitText(term.id, 'still-42', 5000);
  assert.equal(await A.rt.health(), true);
  s.ws.close();
  good.close();
  await A.rt.terminal.close(term.id);
});

test('stopping the workspace closes its WebSockets cleanly (1001); the SDK socket reconnects after start', { skip: needsRoot }, async () => {
  const watcher = await WsRecorder.open(B.rt, { reconnect: true });
  const plain = await WsRecorder.open(B.rt);
  await client.workspaces.stop(B.id);
  const c = await plain.waitClose(10_000);
  assert.deepEqual(c, { code: 1001, reason: 'workspace stopped' });
  await assert.rejects(B.rt.exec.run(['true']), (e: unknown) => e instanceof OblienError && e.status === 503 && e.code === 'workspace_unavailable');
  assert.equal(watcher.closes[0]?.code, 1001);
  await client.workspaces.start(B.id);
  assert.equal(await B.rt.health(), true, 'stop/start does not revoke the token');
  await waitUntil('the SDK socket to reconnect', async () => watcher.opens >= 2, 20_000, 100);
  const t = await B.rt.terminal.create({ cmd: ['/bin/sh'] });
  watcher.sock.writeTerminalInput(t.id, 'echo reconnected-$((3*3))\n');
  await watcher.waitText(t.id, 'reconnected-9');
  watcher.close();

  // Deleting the workspace revokes its token for good.
  await client.workspaces.delete(B.id);
  await rejectsAuth(B.rt.exec.run(['true']), 'a deleted workspace');
});

test('every runtime error answered through the gateway carried the contract error body', { skip: needsRoot }, () => {
  assert.ok(contract.checked() > 20, `checked ${contract.checked()} responses`);
  assert.deepEqual(contract.violations(), []);
});
