/** Guest agent: PTY terminals and the runtime WebSocket (spec §22.6, §22.9). */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startTestAgent, WsRecorder, type TestAgent } from '../helpers/agent-harness.ts';

let t: TestAgent;
before(async () => { t = await startTestAgent({ heartbeatMs: 100 }); });
after(async () => { await t.close(); });

function frame(id: number, text: string): Buffer {
  return Buffer.concat([Buffer.from([id]), Buffer.from(text)]);
}

async function newTerminal(body: Record<string, unknown> = {}): Promise<{ id: string; [k: string]: unknown }> {
  const r = await t.call('POST', '/terminals', { cmd: ['/bin/sh'], ...body });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as { id: string };
}

describe('runtime WebSocket auth', () => {
  test('no token or a wrong token → 401; ?token= and Bearer header both work', async () => {
    await assert.rejects(WsRecorder.open(`${t.url.replace('http', 'ws')}/ws`), /401/);
    await assert.rejects(WsRecorder.open(`${t.url.replace('http', 'ws')}/ws?token=wrong`), /401/);
    const q = await WsRecorder.open(t.wsUrl());
    q.close();
    const h = await WsRecorder.open(`${t.url.replace('http', 'ws')}/ws`, { authorization: `Bearer ${t.secret}` });
    h.close();
    const prefixed = await WsRecorder.open(t.wsUrl('/runtimes/default/ws'));
    prefixed.close();
    await assert.rejects(WsRecorder.open(t.wsUrl('/nope')), /404/);
  });

  test('heartbeat: the server pings', async () => {
    const rec = await WsRecorder.open(t.wsUrl());
    const pinged = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 3000);
      rec.ws.once('ping', () => { clearTimeout(timer); resolve(true); });
    });
    assert.equal(pinged, true);
    rec.close();
  });
});

describe('terminals', () => {
  test('create → echo over the socket → output frames tagged with the id; scrollback has it', async () => {
    const term = await newTerminal({ cols: 100, rows: 30 });
    assert.match(term.id, /^\d{1,3}$/);
    assert.deepEqual(term.command, ['/bin/sh']);
    assert.equal(term.cols, 100);
    assert.equal(term.rows, 30);
    assert.equal(term.alive, true);
    assert.equal(term.scrollback_size, 64 * 1024);
    const id = Number(term.id);

    const rec = await WsRecorder.open(t.wsUrl());
    rec.ws.send(frame(id, "echo hel''lo-from-pty\n"));
    // Up to the prompt that follows the output: after it the terminal is quiet, so two reads of the scrollback agree.
    await rec.waitFor(() => /hello-from-pty\r\n[#$] $/.test(rec.terminalOutput(id)), 'echo output and the next prompt');

    const sb = await t.call('GET', `/terminals/${id}/scrollback`);
    assert.equal(sb.body.alive, true);
    const text = Buffer.from(sb.body.scrollback as string, 'base64').toString();
    assert.ok(text.includes('hello-from-pty'));
    assert.equal(sb.body.size, Buffer.from(sb.body.scrollback as string, 'base64').length);
    const tail = await t.call('GET', `/terminals/${id}/scrollback?bytes=4`);
    assert.equal(tail.body.size, 4);
    assert.equal(Buffer.from(tail.body.scrollback as string, 'base64').toString(), text.slice(-4));

    // Resize through the socket (id as a string, as the SDK sends), observed by stty.
    rec.ws.send(JSON.stringify({ channel: 'terminal', type: 'resize', id: String(id), cols: 120, rows: 40 }));
    // Frames on one socket are handled in order: the resize is applied before stty runs.
    rec.ws.send(frame(id, 'stty size\n'));
    await rec.waitFor(() => rec.terminalOutput(id).includes('40 120'), 'stty size 40 120');
    const listed = (await t.call('GET', '/terminals')).body.terminals as { id: string; cols: number; rows: number }[];
    assert.deepEqual(listed.filter((x) => x.id === term.id).map((x) => [x.cols, x.rows]), [[120, 40]]);

    // Exit: a JSON exit message with the code; the terminal stays listed, not alive.
    rec.ws.send(frame(id, 'exit 3\n'));
    const exitMsg = await rec.waitFor(() => rec.json().find((m) => m.type === 'exit' && m.id === term.id), 'exit message');
    assert.deepEqual(exitMsg, { channel: 'terminal', type: 'exit', id: term.id, code: 3 });
    const after = (await t.call('GET', '/terminals')).body.terminals as { id: string; alive: boolean; exit_code: number }[];
    assert.deepEqual(after.filter((x) => x.id === term.id).map((x) => [x.alive, x.exit_code]), [[false, 3]]);
    const sbAfter = await t.call('GET', `/terminals/${id}/scrollback`);
    assert.equal(sbAfter.body.alive, false);
    assert.equal(sbAfter.body.exit_code, 3);

    const closed = await t.call('DELETE', `/terminals/${id}`);
    assert.deepEqual(closed.body, { success: true, terminal_id: term.id });
    assert.equal((await t.call('GET', `/terminals/${id}/scrollback`)).status, 404);
    rec.close();
  });

  test('binary-safe output: bytes written by the program arrive unchanged', async () => {
    const term = await newTerminal();
    const id = Number(term.id);
    const rec = await WsRecorder.open(t.wsUrl());
    // printf octal escapes → raw UTF-8 bytes of "é€" in the pty output.
    rec.ws.send(frame(id, "printf 'X\\303\\251\\342\\202\\254Y\\n'\n"));
    await rec.waitFor(() => rec.terminalOutput(id).includes('Xé€Y'), 'utf-8 output');
    rec.close();
    await t.call('DELETE', `/terminals/${id}`);
  });

  test('closing a live terminal kills its process; the id is reused', async () => {
    const a = await newTerminal();
    const list = (await t.call('GET', '/terminals')).body.terminals as { id: string; pid: number }[];
    const pid = list.find((x) => x.id === a.id)?.pid as number;
    assert.ok(pid > 0);
    const rec = await WsRecorder.open(t.wsUrl());
    await t.call('DELETE', `/terminals/${a.id}`);
    await rec.waitFor(() => rec.json().find((m) => m.type === 'exit' && m.id === a.id), 'exit after close');
    assert.throws(() => process.kill(pid, 0));
    const b = await newTerminal();
    assert.equal(b.id, a.id, 'the freed id is handed out again');
    await t.call('DELETE', `/terminals/${b.id}`);
    rec.close();
  });

  test('fan-out to several sockets; malformed frames are ignored and never close the socket', async () => {
    const term = await newTerminal();
    const id = Number(term.id);
    const one = await WsRecorder.open(t.wsUrl());
    const two = await WsRecorder.open(t.wsUrl());
    for (const bad of ['not json', '{"channel":"terminal","type":"resize","id":"x"}', '[1,2,3]', 'null', '{"channel":"nope"}', '{"type":"resize","id":999,"cols":1,"rows":1}']) {
      one.ws.send(bad);
    }
    one.ws.send(Buffer.from([id])); // too short
    one.ws.send(frame(250, 'to a terminal that does not exist\n'));
    one.ws.send(frame(id, "echo fan''out-ok\n"));
    await one.waitFor(() => one.terminalOutput(id).includes('fanout-ok'), 'output on socket one');
    await two.waitFor(() => two.terminalOutput(id).includes('fanout-ok'), 'output on socket two');
    assert.equal(one.ws.readyState, WebSocket.OPEN);
    // Application-level ping gets a pong.
    one.ws.send(JSON.stringify({ type: 'ping' }));
    await one.waitFor(() => one.json().find((m) => m.type === 'pong'), 'pong');
    one.close();
    two.close();
    await t.call('DELETE', `/terminals/${id}`);
  });

  test('validation and errors', async () => {
    const bad = await t.call('POST', '/terminals', { cmd: [1] });
    assert.equal(bad.status, 400);
    assert.equal((await t.call('DELETE', '/terminals/77')).status, 404);
    assert.equal((await t.call('DELETE', '/terminals/abc')).status, 404);
    assert.equal((await t.call('GET', '/terminals/300/scrollback')).status, 404);
    for (const x of (await t.call('GET', '/terminals')).body.terminals as { id: string }[]) await t.call('DELETE', `/terminals/${x.id}`);
  });

  test('default command is the shell; env has TERM and no HEARTH_*', async () => {
    process.env.HEARTH_TERMINAL_PROBE = 'secret';
    try {
      const r = await t.call('POST', '/terminals', {});
      const id = Number(r.body.id);
      assert.match((r.body.command as string[])[0] as string, /^\/.*sh$/);
      const rec = await WsRecorder.open(t.wsUrl());
      rec.ws.send(frame(id, 'echo "T=$TERM H=${HEARTH_TERMINAL_PROBE:-none}"\n'));
      await rec.waitFor(() => rec.terminalOutput(id).includes('T=xterm-256color H=none'), 'env check');
      rec.close();
      await t.call('DELETE', `/terminals/${id}`);
    } finally {
      delete process.env.HEARTH_TERMINAL_PROBE;
    }
  });
});
