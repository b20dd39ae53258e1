/**
 * The interactive side of the runtime through the official SDK against a
 * real `hearth serve`: PTY terminals over the runtime WebSocket (bash with a
 * prompt, the python3 REPL, resize, disconnect and reconnect to the
 * scrollback, several at once), file watchers and their events, and the
 * loopback proxy (HTTP, SSE and WebSocket).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Oblien, NotFoundError, type Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';
import { WsRecorder, agentPid, checkRuntimeContract, runtimeFor } from '../helpers/runtime-sdk.ts';

let h: HearthInstance;
let client: Oblien;
let deb: Runtime;
let py: Runtime;
let node: Runtime;
let contract: ReturnType<typeof checkRuntimeContract>;

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  contract = checkRuntimeContract(h.runtime);
  const made = await Promise.all(['debian-12', 'python-3.11', 'node-20'].map((image) => client.workspaces.create({ image, config: { ttl: '15m' } } as never) as Promise<Record<string, any>>));
  [deb, py, node] = await Promise.all(made.map(async (ws) => (await runtimeFor(client, h, ws.id)).rt)) as [Runtime, Runtime, Runtime];
});
after(async () => {
  contract?.restore();
  if (h) await h.stop();
});

test('bash with a prompt in a PTY: resize (stty size), disconnect, output while away, reconnect to the scrollback', { skip: needsRoot }, async () => {
  let ws = await WsRecorder.open(deb);
  const term = await deb.terminal.create({ shell: '/bin/bash', cols: 100, rows: 30 });
  assert.match(term.id, /^\d{1,3}$/, 'terminal ids are decimal 0–255 (one byte on the wire)');
  assert.deepEqual([term.command, term.cols, term.rows, term.alive], [['/bin/bash'], 100, 30, true]);
  const id = term.id;
  ws.sock.writeTerminalInput(id, "PS1='[hearth \\w]\\$ '; cd /tmp\n");
  await ws.waitText(id, '[hearth /tmp]# ');
  ws.sock.writeTerminalInput(id, 'stty size; tty\n');
  await ws.waitText(id, /30 100\r\n\/dev\/pts\/\d+\r\n/);

  ws.sock.resizeTerminal(id, 132, 43);
  await waitUntil('the resize to reach the PTY', async () => (await deb.terminal.list()).find((t) => t.id === id)?.cols === 132, 5000);
  ws.sock.writeTerminalInput(id, 'stty size; echo "cols=$COLUMNS"\n');
  await ws.waitText(id, /43 132\r\ncols=132\r\n/);

  // Disconnect while the shell is about to print; the output lands in the scrollback.
  ws.sock.writeTerminalInput(id, 'sleep 0.5; echo "LATE-$((40 + 2))"\n');
  await ws.waitText(id, 'sleep 0.5');
  ws.close();
  await ws.waitClose();
  await waitUntil('output written while no socket was connected', async () => {
    const sb = await deb.terminal.scrollback(id);
    return Buffer.from(sb.scrollback, 'base64').toString().includes('LATE-42');
  }, 5000, 100);
  const sb = await deb.terminal.scrollback(id);
  assert.equal(sb.alive, true);
  const text = Buffer.from(sb.scrollback, 'base64').toString();
  assert.ok(text.includes('[hearth /tmp]# ') && text.includes('43 132'), 'the whole session is in the scrollback');
  assert.equal(sb.size, Buffer.from(sb.scrollback, 'base64').length);
  const tail = await deb.terminal.scrollback(id, { bytes: 16 });
  assert.equal(tail.size, 16);
  assert.equal(Buffer.from(tail.scrollback, 'base64').toString(), text.slice(-16));

  ws = await WsRecorder.open(deb);
  ws.sock.writeTerminalInput(id, 'echo "back-$((1 + 1))"\n');
  await ws.waitText(id, 'back-2\r\n[hearth /tmp]# ');
  assert.ok(!ws.text(id).includes('LATE-42'), 'a new socket gets live output only; history comes from the scrollback');

  const closed = await deb.terminal.close(id) as Record<string, unknown>;
  assert.deepEqual(closed, { success: true, terminal_id: id });
  await waitUntil('the exit event', async () => ws.exits.find((e) => e.id === id), 5000);
  assert.ok(!(await deb.terminal.list()).some((t) => t.id === id));
  await assert.rejects(deb.terminal.scrollback(id), NotFoundError);
  ws.close();
});

test('python3 REPL: prompt, evaluation, exit code, scrollback after exit', { skip: needsRoot }, async () => {
  const ws = await WsRecorder.open(py);
  const term = await py.terminal.create({ cmd: ['python3', '-q'], cols: 80, rows: 24 });
  await ws.waitText(term.id, '>>> ');
  ws.sock.writeTerminalInput(term.id, 'import os; print(6 * 7, os.get_terminal_size())\n');
  await ws.waitText(term.id, '42 os.terminal_size(columns=80, lines=24)');
  ws.sock.resizeTerminal(term.id, 90, 20);
  await waitUntil('resize', async () => (await py.terminal.list()).find((t) => t.id === term.id)?.rows === 20, 5000);
  ws.sock.writeTerminalInput(term.id, 'print(os.get_terminal_size())\n');
  await ws.waitText(term.id, 'os.terminal_size(columns=90, lines=20)');
  ws.sock.writeTerminalInput(term.id, 'exit(3)\n');
  const exit = await waitUntil('the REPL to exit', async () => ws.exits.find((e) => e.id === term.id), 5000);
  assert.equal(exit.code, 3);
  const listed = (await py.terminal.list()).find((t) => t.id === term.id)!;
  assert.deepEqual([listed.alive, listed.exit_code], [false, 3], 'an exited terminal stays listed for its scrollback');
  const sb = await py.terminal.scrollback(term.id);
  assert.deepEqual([sb.alive, sb.exit_code], [false, 3]);
  assert.match(Buffer.from(sb.scrollback, 'base64').toString(), /42 os\.terminal_size/);
  await py.terminal.close(term.id);
  ws.close();
});

test('several terminals at once: output goes to the right id; ids are reused; bytes are binary-safe', { skip: needsRoot }, async () => {
  const ws = await WsRecorder.open(deb);
  const terms = await Promise.all([1, 2, 3].map(() => deb.terminal.create({ cmd: ['/bin/sh'] })));
  assert.equal(new Set(terms.map((t) => t.id)).size, 3);
  for (const t of terms) ws.sock.writeTerminalInput(t.id, `echo "marker-${t.id}-$((100 + ${t.id}))"\n`);
  for (const t of terms) await ws.waitText(t.id, `marker-${t.id}-${100 + Number(t.id)}\r\n`);
  for (const t of terms) for (const o of terms) if (o.id !== t.id) assert.ok(!ws.text(t.id).includes(`marker-${o.id}-`), 'no cross-talk');
  // Raw bytes through the PTY: UTF-8 split across frames still arrives whole.
  ws.sock.writeTerminalInput(terms[0]!.id, "printf 'caf\\303\\251 \\342\\234\\223\\n'\n");
  await ws.waitText(terms[0]!.id, 'café ✓');
  const freed = terms[1]!.id;
  await deb.terminal.close(freed);
  const again = await deb.terminal.create({ cmd: ['/bin/sh'] });
  assert.equal(again.id, freed, 'the lowest free id is reused');
  for (const t of [terms[0]!, terms[2]!, again]) await deb.terminal.close(t.id);
  ws.close();
});

test('the agent drive carries the PTY addon and its libraries (libutil from /.hearth/lib, not the image)', { skip: needsRoot }, async () => {
  const ls = await deb.exec.run(['sh', '-c', 'ls /.hearth/lib/libutil.so.1 /.hearth/node_modules/@lydell/node-pty/package.json /.hearth/node_modules/@lydell/node-pty-linux-x64/pty.node']);
  assert.equal(ls.exit_code, 0, ls.stderr);
  const pid = await agentPid(deb);
  const maps = await deb.exec.run(['sh', '-c', `grep -E 'libutil|pty.node' /proc/${pid}/maps | awk '{print $6}' | sort -u`]);
  assert.deepEqual(maps.stdout!.trim().split('\n'), ['/.hearth/lib/libutil.so.1', '/.hearth/node_modules/@lydell/node-pty-linux-x64/pty.node']);
});

test('watchers: ready, create/write/remove events on the WebSocket, excludes, new directories, delete stops events', { skip: needsRoot }, async () => {
  await deb.files.mkdir({ path: '/w/sub/deeper' });
  await deb.files.mkdir({ path: '/w/node_modules/pkg' });
  const ws = await WsRecorder.open(deb);
  const w = await deb.watcher.create({ path: '/w', excludes: ['node_modules'] });
  assert.equal(w.root, '/w');
  assert.equal(w.dir_count, 3, '/w, /w/sub, /w/sub/deeper — node_modules is not watched at all');
  const ready = await ws.waitWatcher((e) => e.type === 'ready' && e.watcher_id === w.id, 'ready');
  assert.deepEqual([ready.root, ready.dirs], ['/w', 3]);

  await deb.files.write({ fullPath: '/w/sub/deeper/a.txt', content: 'one' });
  await ws.waitWatcher((e) => e.path === '/w/sub/deeper/a.txt' && e.op === 'create', 'create of a.txt');
  await new Promise((r) => setTimeout(r, 100)); // past the coalescing window
  await deb.files.write({ fullPath: '/w/sub/deeper/a.txt', content: 'two', append: true });
  await ws.waitWatcher((e) => e.path === '/w/sub/deeper/a.txt' && e.op === 'write', 'write of a.txt');
  await deb.files.write({ fullPath: '/w/node_modules/pkg/index.js', content: 'ignored' });
  await deb.exec.run(['sh', '-c', 'mkdir -p /w/fresh/inner && echo x > /w/fresh/inner/b.txt']);
  await ws.waitWatcher((e) => e.path === '/w/fresh/inner/b.txt' && e.op === 'create', 'a file inside a directory made just now');
  await deb.files.delete({ path: '/w/sub/deeper/a.txt' });
  await ws.waitWatcher((e) => e.path === '/w/sub/deeper/a.txt' && e.op === 'remove', 'remove of a.txt');
  assert.ok(!ws.watcher.some((e) => e.path?.includes('node_modules')), 'excluded trees send nothing');
  for (const e of ws.watcher.filter((x) => x.type === 'change')) {
    assert.equal(e.channel, 'watcher');
    assert.equal(e.watcher_id, w.id);
    assert.ok(['create', 'write', 'remove', 'rename', 'unknown'].includes(e.op!), e.op);
  }
  const changes = ws.watcher.filter((e) => e.type === 'change' && e.path === '/w/sub/deeper/a.txt').map((e) => e.op);
  assert.deepEqual([changes[0], changes[changes.length - 1]], ['create', 'remove'], 'in order');

  assert.ok((await deb.watcher.list()).some((x) => x.id === w.id));
  const got = await deb.watcher.get(w.id);
  assert.equal(got.dir_count, 5, 'the new directories are watched too');
  assert.deepEqual(await deb.watcher.delete(w.id), { success: true, watcher_id: w.id });
  const before = ws.watcher.length;
  await deb.files.write({ fullPath: '/w/after-delete.txt', content: 'x' });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(ws.watcher.length, before, 'a deleted watcher sends nothing');
  await assert.rejects(deb.watcher.get(w.id), NotFoundError);
  await assert.rejects(deb.watcher.create({ path: '/no/such/dir' }), NotFoundError);
  ws.close();
});

const APP = `
const http = require('http'), crypto = require('crypto');
const srv = http.createServer((req, res) => {
  if (req.url.startsWith('/sse')) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let i = 0;
    const t = setInterval(() => { res.write('data: ' + JSON.stringify({ n: i }) + '\\n\\n'); if (++i === 3) { clearInterval(t); res.end(); } }, 100);
    return;
  }
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    res.writeHead(req.url.startsWith('/missing') ? 404 : 200, { 'content-type': 'application/json', 'x-app': 'yes' });
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
  });
});
srv.on('upgrade', (req, sock) => {
  const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  sock.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: ' + accept + '\\r\\n\\r\\n');
  sock.on('data', (buf) => {
    if ((buf[0] & 0x0f) === 8) { sock.end(Buffer.from([0x88, 0])); return; }
    const len = buf[1] & 0x7f, mask = buf.subarray(2, 6);
    const data = Buffer.from(buf.subarray(6, 6 + len).map((b, i) => b ^ mask[i % 4]));
    const out = Buffer.from('echo:' + data + ' url=' + req.url + ' auth=' + (req.headers.authorization || 'none'));
    sock.write(Buffer.concat([Buffer.from([0x81, out.length]), out]));
  });
});
srv.listen(3000, '127.0.0.1', () => console.log('listening'));
`;

test('proxy: HTTP (status, headers, body), SSE streaming and WebSocket to a loopback app; only loopback', { skip: needsRoot }, async () => {
  await node.files.write({ fullPath: '/app/server.js', content: APP });
  const it = node.exec.stream(['node', '/app/server.js'])[Symbol.asyncIterator]();
  await it.next();
  await it.return?.(undefined);
  const app = node.proxy(3000);
  await waitUntil('the app to listen', async () => (await app.fetch('/ready')).status === 200, 10_000, 50);

  const res = await app.fetch('/echo?x=1', { method: 'POST', body: 'payload', headers: { 'x-custom': 'kept', 'content-type': 'text/plain' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-app'), 'yes');
  const echo = await res.json() as { method: string; url: string; headers: Record<string, string>; body: string };
  assert.deepEqual([echo.method, echo.url, echo.body, echo.headers['x-custom']], ['POST', '/echo?x=1', 'payload', 'kept']);
  assert.equal(echo.headers.authorization, undefined, 'neither the runtime token nor the agent secret reaches the app');
  assert.equal(echo.headers['x-oblien-proxy-target'], undefined);
  assert.equal(echo.headers.host, '127.0.0.1:3000');
  assert.equal((await app.fetch('/missing')).status, 404, 'upstream status passes through');

  const sse = await app.fetch('/sse');
  const reader = sse.body!.getReader();
  const stamps: number[] = [];
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString();
    stamps.push(Date.now());
  }
  assert.equal(text, 'data: {"n":0}\n\ndata: {"n":1}\n\ndata: {"n":2}\n\n');
  assert.ok(stamps.length >= 2 && stamps[stamps.length - 1]! - stamps[0]! >= 100, 'events arrive as they are sent, not buffered');

  const sock = app.ws('/chat?room=1');
  const msg = await new Promise<string>((resolve, reject) => {
    sock.addEventListener('open', () => sock.send('hello'));
    sock.addEventListener('message', (ev) => resolve(String(ev.data)));
    sock.addEventListener('error', () => reject(new Error('proxy ws error')));
  });
  assert.equal(msg, 'echo:hello url=/chat?room=1 auth=none', 'token and target stripped, credentials never forwarded');
  sock.close();

  const refused = await node.proxy(3999).fetch('/');
  assert.equal(refused.status, 502);
  assert.equal((await refused.json()).code, 'bad_gateway');
  const remote = await node.proxy(3000, '10.0.0.1').fetch('/');
  assert.equal(remote.status, 400, 'only loopback targets');
});

test('every runtime error answered through the gateway carried the contract error body', { skip: needsRoot }, () => {
  assert.ok(contract.checked() > 30, `checked ${contract.checked()} responses`);
  assert.deepEqual(contract.violations(), []);
});
