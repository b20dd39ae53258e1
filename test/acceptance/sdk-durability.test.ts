/**
 * Workspaces outlive hearthd: a kill -9 of hearthd leaves them running and the
 * restarted hearthd adopts them; a permanent workspace's files survive
 * stop/start.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Oblien, Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';

let h: HearthInstance;
let client: Oblien;

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

test('files of a permanent workspace survive stop and start', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never) as Record<string, any>;
  const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
  const rt = new Runtime({ token, baseUrl: h.runtime });
  await rt.files.write({ fullPath: '/root/notes/keep.txt', content: 'still here' });
  const stopped = await client.workspaces.stop(ws.id) as Record<string, any>;
  assert.equal(stopped.workspace.status, 'stopped');
  await assert.rejects(rt.exec.run(['true']), /stopped/);
  const started = await client.workspaces.start(ws.id) as Record<string, any>;
  assert.equal(started.workspace.status, 'running');
  assert.equal(started.workspace.info.internal_ip, ws.info.internal_ip, 'the internal IP is stable');
  assert.equal((await rt.files.read({ filePath: '/root/notes/keep.txt' })).content, 'still here');
  await client.workspaces.delete(ws.id);
});

test('kill -9 of hearthd: running workspaces keep running and are adopted after restart', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never) as Record<string, any>;
  const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
  const rt = new Runtime({ token, baseUrl: h.runtime });
  await rt.exec.run(['sh', '-c', 'sleep 1000 >/dev/null 2>&1 & echo $! > /tmp/sleeper.pid']);
  const pidBefore = (await rt.files.read({ filePath: '/tmp/sleeper.pid' })).content.trim();
  await h.crashAndRestart();
  const got = await client.workspaces.get(ws.id) as Record<string, any>;
  assert.equal(got.status, 'running');
  // Same process still alive: the sandbox was adopted, not restarted; the old token still works.
  const r = await rt.exec.run(['sh', '-c', `kill -0 ${pidBefore} && echo alive`]);
  assert.equal(r.stdout, 'alive\n');
  assert.ok(h.logs.join('').includes('"adopted":1'), 'the reconcile summary reports the adoption');
  await client.workspaces.delete(ws.id);
});
