/**
 * Lifecycle through the official SDK against a real hearth serve: TTL and
 * mode changes, keep-alive, metadata, idle sleep with wake on the next
 * request, and a kill -9 of hearthd with ten workspaces in flight.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Oblien, Runtime, NotFoundError } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { runDirFor } from '../../src/host/local-host.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';

let h: HearthInstance;
let client: Oblien;

before(async () => {
  if (needsRoot) return;
  h = await startHearth({ extraArgs: ['--min-idle-seconds', '1'] });
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

const gone = async (id: string) => {
  try {
    await client.workspaces.get(id);
    return false;
  } catch (e) {
    if (e instanceof NotFoundError) return true;
    throw e;
  }
};

test('lifecycle: permanent ↔ temporary, TTL set/extend/clear, ping, metadata', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never) as any;
  let lc = await client.workspaces.lifecycle.get(ws.id) as any;
  assert.equal(lc.mode, 'permanent');
  assert.equal(lc.expires_at, null);
  await client.workspaces.lifecycle.makeTemporary(ws.id, { ttl: '10m', remove_on_exit: true } as never);
  lc = await client.workspaces.lifecycle.get(ws.id) as any;
  assert.equal(lc.mode, 'temporary');
  assert.ok(Math.abs(Date.parse(lc.expires_at) - (Date.now() + 600_000)) < 10_000);
  await client.workspaces.lifecycle.updateTtl(ws.id, { ttl: '2h' } as never);
  lc = await client.workspaces.lifecycle.get(ws.id) as any;
  assert.ok(Date.parse(lc.expires_at) > Date.now() + 7_000_000, 'extended');
  await client.workspaces.lifecycle.updateTtl(ws.id, { ttl: 60 } as never);
  const before = Date.parse((await client.workspaces.lifecycle.get(ws.id) as any).expires_at);
  await new Promise((r) => setTimeout(r, 1100));
  await client.workspaces.ping(ws.id, { ttl_seconds: 120 } as never);
  assert.ok(Date.parse((await client.workspaces.lifecycle.get(ws.id) as any).expires_at) > before + 50_000, 'ping renews the TTL clock');
  await client.workspaces.lifecycle.updateTtl(ws.id, { ttl: null } as never);
  assert.equal((await client.workspaces.lifecycle.get(ws.id) as any).expires_at, null, 'cleared');
  await client.workspaces.lifecycle.makePermanent(ws.id, {} as never);
  lc = await client.workspaces.lifecycle.get(ws.id) as any;
  assert.deepEqual([lc.mode, lc.remove_on_exit], ['permanent', false]);

  await client.workspaces.metadata.update(ws.id, { metadata: { owner: 'alice', tier: 'gold' } } as never);
  await client.workspaces.metadata.patch(ws.id, { metadata: { tier: 'silver', region: 'home' } } as never);
  assert.deepEqual((await client.workspaces.metadata.get(ws.id) as any).metadata, { owner: 'alice', tier: 'silver', region: 'home' });
  await assert.rejects(client.workspaces.metadata.patch(ws.id, { metadata: { bad: { nested: true } } } as never), (e: any) => e.code === 'validation_error');
  await client.workspaces.delete(ws.id);
});

test('idle sleep: a quiet workspace sleeps, keeps its files, and the next request wakes it and is answered', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never) as any;
  const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
  const rt = new Runtime({ token, baseUrl: h.runtime });
  await rt.files.write({ fullPath: '/root/before-sleep.txt', content: 'kept' });
  const idle = await client.workspaces.lifecycle.setIdle(ws.id, { suspend_after: 2 } as never) as any;
  assert.deepEqual(idle.idle, { suspend_after: 2, stop_after: 0 });
  await assert.rejects(client.workspaces.lifecycle.setIdle(ws.id, { suspend_after: 2, stop_after: 60 } as never), (e: any) => e.code === 'validation_error', 'stop_after under an hour is refused');
  await waitUntil('the workspace to fall asleep', async () => ((await client.workspaces.get(ws.id)) as any).status === 'sleeping', 20_000, 200);
  const t = Date.now();
  const r = await rt.exec.run(['cat', '/root/before-sleep.txt']);
  const wakeMs = Date.now() - t;
  assert.equal(r.stdout, 'kept');
  assert.equal(((await client.workspaces.get(ws.id)) as any).status, 'running');
  assert.ok(wakeMs < 15_000, `woke in ${wakeMs} ms`);
  await client.workspaces.lifecycle.setIdle(ws.id, { suspend_after: 0 } as never);
  await client.workspaces.delete(ws.id);
});

test('kill -9 of hearthd with 10 workspaces: permanent ones run, expired ones are gone, the mid-creation one settles, nothing is orphaned', { skip: needsRoot }, async () => {
  const perm = await Promise.all(Array.from({ length: 5 }, () => client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never))) as any[];
  const longTtl = await Promise.all(Array.from({ length: 2 }, () => client.workspaces.create({ image: 'debian-12', config: { ttl: '30m' } } as never))) as any[];
  const shortTtl = await Promise.all(Array.from({ length: 2 }, () => client.workspaces.create({ image: 'debian-12', config: { ttl: '4s', remove_on_exit: true } } as never))) as any[];
  // The tenth is mid-creation when hearthd dies.
  const headers = { 'content-type': 'application/json', 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret };
  void fetch(`${h.api}/workspace`, { method: 'POST', headers, body: JSON.stringify({ image: 'node-20', mode: 'permanent', name: 'mid-creation' }) }).catch(() => undefined);
  await waitUntil('the tenth workspace row to exist', async () => ((await client.workspaces.list({ limit: 50 } as never)) as any).workspaces.some((w: any) => w.name === 'mid-creation'), 5_000, 5);
  // And one permanent workspace's sandbox dies while hearthd is away.
  const victim = perm[0];
  const runDir = runDirFor(h.dataDir);
  await h.crashAndRestart(async () => {
    const pid = Number(fs.readFileSync(path.join(runDir, 'pids', `hth-${victim.id}.pid`), 'utf8'));
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 4500)); // the short TTLs expire while hearthd is down
  });
  for (const w of perm) {
    await waitUntil(`permanent ${w.id} to run`, async () => ((await client.workspaces.get(w.id)) as any).ready === true, 20_000, 100);
  }
  const { token } = await client.workspaces.apiAccess.enable(victim.id) as { token: string };
  assert.equal((await new Runtime({ token, baseUrl: h.runtime }).exec.run(['echo', 'back'])).stdout, 'back\n', 'the dead sandbox was started again');
  for (const w of longTtl) assert.equal(((await client.workspaces.get(w.id)) as any).status, 'running');
  for (const w of shortTtl) await waitUntil(`expired ${w.id} to be deleted`, () => gone(w.id), 10_000, 100);
  const mid = ((await client.workspaces.list({ limit: 50 } as never)) as any).workspaces.find((w: any) => w.name === 'mid-creation');
  await waitUntil('the mid-creation workspace to settle', async () => {
    const w = (await client.workspaces.get(mid.id)) as any;
    return w.ready === true || w.provisioning?.state === 'failed';
  }, 30_000, 100);
  assert.ok(h.logs.join('').includes('reconciled the store with the host'));
  // h.stop() (after) deletes everything and asserts no veth, netns, mount, cgroup or process is left.
});
