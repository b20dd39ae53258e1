/**
 * The official SDK's workspace surface against a real `hearth serve`
 * (container driver): every call answers for real, a field sent is a field
 * honoured, and what Hearth does not do answers `not_implemented` with a
 * reason, never a 404, a 500 or a silent 200.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Oblien, Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';

let h: HearthInstance;
let client: Oblien;
let edge: number;

before(async () => {
  if (needsRoot) return;
  h = await startHearth({ extraArgs: ['--min-idle-seconds', '1', '--edge-listen', '127.0.0.1:0', '--edge-tls-listen', '127.0.0.1:0', '--ssh-listen', 'off'] });
  const ep = JSON.parse(await fs.readFile(path.join(h.dataDir, 'endpoints.json'), 'utf8')) as J;
  edge = Number(new URL(ep.edge as string).port);
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

type J = Record<string, any>;

async function raw(method: string, path: string, body?: unknown): Promise<{ status: number; json: J }> {
  const res = await fetch(`${h.api}${path}`, {
    method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    headers: { 'content-type': 'application/json', 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret },
  });
  return { status: res.status, json: await res.json() as J };
}

async function runtimeOf(id: string): Promise<Runtime> {
  const { token } = await client.workspaces.apiAccess.enable(id) as { token: string };
  return new Runtime({ token, baseUrl: h.runtime });
}

test('resources: PUT and PATCH change cpus and memory of a running container at once, the disk grows, shrink is refused', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', mode: 'permanent', config: { cpus: 1, memory_mb: 256, disk_size_mb: 300 } } as never) as J;
  const rt = await runtimeOf(ws.id);
  const cgroupMem = async () => Number((await rt.exec.run(['sh', '-c', 'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes'])).stdout!.trim());
  assert.equal(await cgroupMem(), 256 * 1048576);

  const put = await client.workspaces.resources.update(ws.id, { memory_mb: 384, cpus: 2 } as never) as J;
  assert.deepEqual(put.updated, { cpus: 2, memory_mb: 384, disk_size_mb: 300 });
  assert.equal(put.applied.cpus_memory, 'applied', JSON.stringify(put));
  assert.equal(await cgroupMem(), 384 * 1048576, 'the cgroup limit changed without a restart');
  const quota = (await rt.exec.run(['sh', '-c', 'cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us'])).stdout!.trim();
  assert.match(quota, /^200000/);

  const patch = await client.workspaces.resources.patch(ws.id, { memory_mb: 320 } as never) as J;
  assert.deepEqual(patch.updated, { cpus: 2, memory_mb: 320, disk_size_mb: 300 });
  assert.equal(await cgroupMem(), 320 * 1048576);
  const got = await client.workspaces.resources.get(ws.id) as J;
  assert.equal(got.memory_mb, 320);

  const empty = await raw('PATCH', `/workspace/${ws.id}/resources`, {});
  assert.equal(empty.status, 400);
  const unknown = await raw('PUT', `/workspace/${ws.id}/resources`, { gpus: 1 });
  assert.equal(unknown.status, 400);
  assert.match(unknown.json.message, /unknown resource field/);
  const tooBig = await raw('PUT', `/workspace/${ws.id}/resources`, { memory_mb: 10_000_000 });
  assert.equal(tooBig.status, 400);

  // Disk: usage from the disk itself, grow, refuse shrink, sync.
  await rt.exec.run(['sh', '-c', 'dd if=/dev/zero of=/root/blob bs=1M count=40 2>/dev/null; sync']);
  const usage = (await raw('GET', `/workspace/${ws.id}/overlay/usage`)).json;
  assert.equal(usage.success, true);
  assert.equal(usage.source, 'statfs');
  assert.ok(usage.used_mb >= 40, `usage counts the 40 MB written: ${JSON.stringify(usage)}`);
  const files = (await raw('GET', `/workspace/${ws.id}/overlay`)).json;
  assert.ok(files.files.some((f: J) => f.path === '/root/blob' && f.size === 40 * 1048576), JSON.stringify(files.files.slice(0, 20)));
  const shrink = await raw('PUT', `/workspace/${ws.id}/overlay/resize`, { size_mb: 256 });
  assert.equal(shrink.status, 400);
  assert.match(shrink.json.message, /cannot shrink/);
  const grow = await raw('PUT', `/workspace/${ws.id}/overlay/resize`, { size_mb: 400 });
  assert.equal(grow.status, 200, JSON.stringify(grow.json));
  assert.equal(grow.json.size_mb, 400);
  assert.ok(['grown', 'next-start'].includes(grow.json.applied));
  const sync = await raw('POST', `/workspace/${ws.id}/overlay/sync`, {});
  assert.deepEqual({ s: sync.status, g: sync.json.guest, h: sync.json.host }, { s: 200, g: true, h: true });

  // Stopped: usage from the image's superblock, listing mounts the disk briefly.
  await client.workspaces.stop(ws.id);
  const cold = (await raw('GET', `/workspace/${ws.id}/overlay/usage`)).json;
  assert.equal(cold.source, 'superblock');
  assert.ok(cold.used_mb >= 40);
  const coldFiles = (await raw('GET', `/workspace/${ws.id}/overlay`)).json;
  assert.ok(coldFiles.files.some((f: J) => f.path === '/root/blob'));
  const stoppedResize = await client.workspaces.resources.update(ws.id, { memory_mb: 512 } as never) as J;
  assert.equal(stoppedResize.applied.cpus_memory, 'next-start');
  await client.workspaces.start(ws.id);
  const rt2 = await runtimeOf(ws.id);
  assert.equal(Number((await rt2.exec.run(['sh', '-c', 'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes'])).stdout!.trim()), 512 * 1048576);
  await client.workspaces.delete(ws.id);
});

/** GET / through the edge with a Host header (preview names need no DNS). */
function viaEdge(hostname: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: edge, path: '/', headers: { host: hostname } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('network.update: public_access switches exposed ports off and on at once; BYOP and private links answer not_supported; unknown fields are refused', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'node-20', mode: 'permanent' } as never) as J;
  await client.workspaces.workloads.create(ws.id, { name: 'web', cmd: ['node', '-e', "require('http').createServer((q,s)=>s.end('hi')).listen(3000)"] } as never);
  const exposed = await client.workspaces.publicAccess.expose(ws.id, { port: 3000 } as never) as J;
  const host = new URL(((exposed.port as J | undefined)?.url ?? exposed.url) as string).hostname;
  const served = async () => { for (let i = 0; i < 50; i++) { const r = await viaEdge(host); if (r.status === 200) return r; await new Promise((f) => setTimeout(f, 100)); } return viaEdge(host); };
  assert.equal((await served()).body, 'hi');

  const off = await client.workspaces.network.update(ws.id, { public_access: false }) as J;
  assert.equal(off.public_access, false);
  assert.notEqual((await viaEdge(host)).status, 200, 'no longer routed');
  assert.equal(((await client.workspaces.network.get(ws.id)) as J).public_access, false);
  const on = await client.workspaces.network.update(ws.id, { public_access: true }) as J;
  assert.equal(on.public_access, true);
  assert.equal((await served()).body, 'hi');

  for (const body of [{ outbound_mode: 'custom', custom_proxy: { host: '203.0.113.7', port: 3128 } }, { custom_proxy: { host: '203.0.113.7', port: 3128 } }, { private_link_ids: ['ws_other'] }]) {
    const r = await raw('PATCH', `/workspace/${ws.id}/network`, body);
    assert.equal(r.status, 501, JSON.stringify(r.json));
    assert.equal(r.json.code, 'not_supported');
    assert.ok(r.json.hint);
  }
  await assert.rejects(client.workspaces.network.setCustomProxy(ws.id, { host: '203.0.113.7', port: 3128 }), /not offered/);
  assert.equal(((await client.workspaces.network.clearCustomProxy(ws.id)) as J).outbound_mode, 'managed');
  const unknown = await raw('PATCH', `/workspace/${ws.id}/network`, { firewall: 'on' });
  assert.equal(unknown.status, 400);
  await client.workspaces.delete(ws.id);
});

test('products other than workspaces, and the desktop, answer not_supported (never 404)', { skip: needsRoot }, async () => {
  for (const [method, p] of [['GET', '/pages'], ['POST', '/pages/deploy'], ['GET', '/cdn/files'], ['GET', '/analytics/home/summary'], ['POST', '/billing/checkout'], ['GET', '/edge/proxies'], ['POST', '/edge/tunnels'], ['GET', '/edge/tunnels/t1'], ['GET', '/domain/routes/a.example.com'], ['POST', '/workspace/ws_x/desktop/install'], ['GET', '/workspace/ws_x/desktop/installation']] as const) {
    const r = await raw(method, p, method === 'GET' ? undefined : {});
    assert.equal(r.status, 501, `${method} ${p}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.code, 'not_supported');
  }
  await assert.rejects(client.workspaces.desktop.install('ws_x' as never), /not offered/);
  const ws = await client.workspaces.create({ image: 'debian-12' } as never) as J;
  const rt = await runtimeOf(ws.id);
  const st = await rt.desktop.status() as J;
  assert.equal(st.supported, false);
  await assert.rejects(rt.desktop.enable(), /not offered/);
  await assert.rejects(rt.desktop.credentials(), /not offered/);
  await client.workspaces.delete(ws.id);
});

test('fields: a create without an image gets the default, logo and auto_stop_seconds are stored and auto-stop stops an idle workspace; usage.activity lists every state-changing call', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ name: 'no-image' } as never) as J;
  assert.equal(ws.image, 'debian-12');
  const updated = await client.workspaces.update(ws.id, { logo: 'https://example.com/logo.png', auto_stop_seconds: 2 } as never) as J;
  assert.equal(updated.logo ?? updated.workspace?.logo, 'https://example.com/logo.png');
  const got = await client.workspaces.get(ws.id) as J;
  assert.equal(got.logo, 'https://example.com/logo.png');
  assert.equal(got.auto_stop_seconds, 2);
  const bad = await raw('PUT', `/workspace/${ws.id}`, { logo: 'javascript:alert(1)' });
  assert.equal(bad.status, 400);
  const badStop = await raw('PUT', `/workspace/${ws.id}`, { auto_stop_seconds: -5 });
  assert.equal(badStop.status, 400);
  // Auto-stop: nothing touches the workspace, the reaper stops it.
  let status = '';
  for (let i = 0; i < 100 && status !== 'stopped'; i++) { await new Promise((f) => setTimeout(f, 200)); status = ((await client.workspaces.get(ws.id)) as J).status as string; }
  assert.equal(status, 'stopped', 'auto_stop_seconds stopped the idle workspace');

  const activity = await client.workspaces.usage.activity() as J;
  const mine = (activity.data as J[]).filter((e) => e.workspace_id === ws.id);
  const actions = mine.map((e) => `${e.action} ${e.status}`);
  assert.ok(actions.includes('PUT /workspace/:id 200'), actions.join(', '));
  assert.ok(actions.includes('PUT /workspace/:id 400'), 'refused calls are logged with their result');
  assert.ok(mine.every((e) => e.actor === h.clientId && e.created_at && e.result), JSON.stringify(mine[0]));
  assert.ok(!mine.some((e) => String(e.action).startsWith('GET ')), 'reads are not activity');
  await client.workspaces.delete(ws.id);
});
