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
import WebSocket from 'ws';
import { Oblien, Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';

// Node 20 has no global WebSocket; the SDK's rt.ws() uses the global one.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

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

/** Public methods of an SDK object and its sub-resources ("lifecycle.get"), read by reflection so the list cannot rot. */
function surface(root: object): string[] {
  const methods = (o: object) => {
    const s = new Set<string>();
    for (let p = Object.getPrototypeOf(o); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
      for (const k of Object.getOwnPropertyNames(p)) if (k !== 'constructor' && !k.startsWith('_') && typeof (o as J)[k] === 'function') s.add(k);
    }
    return [...s];
  };
  const out = methods(root);
  for (const [k, v] of Object.entries(root)) if (!k.startsWith('_') && typeof v === 'object' && v) for (const m of methods(v)) out.push(`${k}.${m}`);
  return out;
}

/** The first item of an async stream, or null after `ms` (the stream is then closed). */
async function first<T>(it: AsyncGenerator<T>, ms = 5000): Promise<T | null> {
  const timer = new Promise<null>((f) => setTimeout(() => f(null), ms));
  const r = await Promise.race([it.next().then((x) => (x.done ? null : x.value)), timer]);
  void it.return(undefined as never).catch(() => undefined);
  return r;
}

/** Methods that answer not_supported on purpose (the SDK's call reaches Hearth and gets a clear refusal). */
const NOT_SUPPORTED = new Set(['desktop.install', 'desktop.installation', 'desktop.sshConnection', 'network.setCustomProxy']);
const RUNTIME_NOT_SUPPORTED = new Set(['desktop.enable', 'desktop.disable', 'desktop.credentials', 'desktop.tunnel']);

test('every client.workspaces.* and every Runtime method answers for real (or not_supported, listed)', { skip: needsRoot }, async (t) => {
  const w = client.workspaces as any;
  const ws = await w.create({ image: 'node-20', name: 'surface', mode: 'permanent', config: { memory_mb: 256, disk_size_mb: 512 } }) as J;
  const id = ws.id as string;
  let wid = '';
  const calls: Record<string, () => Promise<unknown>> = {
    'create': async () => ws,
    'waitUntilReady': () => w.waitUntilReady(id),
    'list': () => w.list({ limit: 5 }),
    'get': async () => assert.equal((await w.get(id)).id, id),
    'update': async () => assert.equal((await w.update(id, { name: 'surface-2' })).name, 'surface-2'),
    'getDetails': () => w.getDetails(id),
    'ping': () => w.ping(id),
    'getQuota': () => w.getQuota(),
    'getEstimate': () => w.getEstimate({ cpu: 1, ram_mb: 512, disk_mb: 1024 }),
    'runtime': async () => { process.env.HEARTH_RUNTIME_URL = h.runtime; return w.runtime(id).catch(() => null); },
    'setTokenTtl': async () => w.setTokenTtl(60_000),
    'invalidateRuntime': async () => w.invalidateRuntime(id),
    'invalidateAllRuntimes': async () => w.invalidateAllRuntimes(),
    'lifecycle.get': () => w.lifecycle.get(id),
    'lifecycle.makeTemporary': () => w.lifecycle.makeTemporary(id, { ttl: '2h' }),
    'lifecycle.updateTtl': () => w.lifecycle.updateTtl(id, { ttl: '3h' }),
    'lifecycle.ping': () => w.lifecycle.ping(id),
    'lifecycle.makePermanent': () => w.lifecycle.makePermanent(id),
    'lifecycle.setIdle': async () => { await w.lifecycle.setIdle(id, { suspend_after: 3600 }); await w.lifecycle.setIdle(id, null); },
    'network.get': () => w.network.get(id),
    'network.update': async () => assert.equal((await w.network.update(id, { allow_internet: true, egress: [] })).allow_internet, true),
    'network.applyOutboundIp': () => w.network.applyOutboundIp(id, { ip: null }),
    'network.setCustomProxy': () => w.network.setCustomProxy(id, { host: '203.0.113.5', port: 8080 }),
    'network.clearCustomProxy': () => w.network.clearCustomProxy(id),
    'ssh.status': () => w.ssh.status(id),
    'ssh.enable': () => w.ssh.enable(id),
    'ssh.setPassword': () => w.ssh.setPassword(id, { password: 'a-long-enough-password-2' }),
    'ssh.setKey': () => w.ssh.setKey(id, { public_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl s@t' }),
    'ssh.disable': () => w.ssh.disable(id),
    'desktop.install': () => w.desktop.install(id),
    'desktop.installation': () => w.desktop.installation(id),
    'desktop.sshConnection': () => w.desktop.sshConnection(id),
    'workloads.create': async () => { const r = await w.workloads.create(id, { name: 'web', cmd: ['node', '-e', "require('http').createServer((q,s)=>s.end('ok')).listen(3000); setInterval(()=>console.log('tick'),200)"] }); wid = (r.id ?? r.workload?.id) as string; },
    'workloads.list': async () => assert.ok((await w.workloads.list(id)).length >= 1),
    'workloads.get': () => w.workloads.get(id, wid),
    'workloads.update': () => w.workloads.update(id, wid, { env: { A: '1' } }),
    'workloads.patch': () => w.workloads.patch(id, wid, { env: { A: '2' } }),
    'workloads.status': () => w.workloads.status(id, wid),
    'workloads.logs': () => w.workloads.logs(id, wid),
    'workloads.stats': () => w.workloads.stats(id, wid),
    'workloads.statsStream': () => first(w.workloads.statsStream(id, wid)),
    'workloads.logsStream': async () => assert.ok(await first(w.workloads.logsStream(id, wid)), 'a log line arrives'),
    'workloads.allStatsStream': () => first(w.workloads.allStatsStream(id)),
    'workloads.stop': () => w.workloads.stop(id, wid),
    'workloads.start': () => w.workloads.start(id, wid),
    'publicAccess.expose': () => w.publicAccess.expose(id, { port: 3000 }),
    'publicAccess.list': async () => assert.equal((await w.publicAccess.list(id)).length, 1),
    'publicAccess.updateSlug': () => w.publicAccess.updateSlug(id, 3000, { slug: `surface-${id.slice(3, 9).toLowerCase()}` }),
    'publicAccess.revoke': () => w.publicAccess.revoke(id, 3000),
    'resources.get': () => w.resources.get(id),
    'resources.update': async () => assert.equal((await w.resources.update(id, { memory_mb: 320 })).applied.cpus_memory, 'applied'),
    'resources.patch': async () => assert.equal((await w.resources.patch(id, { cpus: 1 })).updated.cpus, 1),
    'metrics.stats': () => w.metrics.stats(id),
    'metrics.statsStream': () => first(w.metrics.statsStream(id)),
    'metrics.info': () => w.metrics.info(id),
    'metrics.config': () => w.metrics.config(id),
    'usage.get': () => w.usage.get(id),
    'usage.totals': () => w.usage.totals(id),
    'usage.creditsChart': () => w.usage.creditsChart(id),
    'usage.global': () => w.usage.global(),
    'usage.activity': async () => assert.ok((await w.usage.activity()).data.length > 0),
    'usage.startTracking': () => w.usage.startTracking(id),
    'usage.stopTracking': () => w.usage.stopTracking(id),
    'usage.wipe': () => w.usage.wipe(id),
    'metadata.update': () => w.metadata.update(id, { metadata: { a: '1' } }),
    'metadata.patch': () => w.metadata.patch(id, { metadata: { b: '2' } }),
    'metadata.get': async () => assert.deepEqual((await w.metadata.get(id)).metadata, { a: '1', b: '2' }),
    'apiAccess.status': () => w.apiAccess.status(id),
    'apiAccess.enable': () => w.apiAccess.enable(id),
    'apiAccess.getToken': () => w.apiAccess.getToken(id),
    'apiAccess.rawToken': () => w.apiAccess.rawToken(id),
    'apiAccess.rotateToken': () => w.apiAccess.rotateToken(id),
    'apiAccess.disable': async () => { await w.apiAccess.disable(id); await w.apiAccess.enable(id); },
    'logs.get': () => w.logs.get(id),
    'logs.listFiles': () => w.logs.listFiles(id),
    'logs.getFile': async () => { const files = await w.logs.listFiles(id) as J[]; if (files[0]) await w.logs.getFile(id, files[0].name); },
    'logs.streamBoot': () => first(w.logs.streamBoot(id), 2000),
    'logs.streamCmd': () => first(w.logs.streamCmd(id), 2000),
    'logs.clear': () => w.logs.clear(id),
    'images.list': () => w.images.list(),
    'domains.connect': () => w.domains.connect(id, { domain: 'app.sdk-surface.test', port: 3000 }),
    'domains.get': () => w.domains.get(id),
    'domains.checkDNS': () => w.domains.checkDNS(id, { domain: 'app.sdk-surface.test' }),
    'domains.renewSSL': () => w.domains.renewSSL(id),
    'domains.disconnect': () => w.domains.disconnect(id),
    'snapshots.create': () => w.snapshots.create(id),
    'snapshots.createArchive': () => w.snapshots.createArchive(id),
    'snapshots.listArchives': async () => assert.ok((await w.snapshots.listArchives(id)).length >= 1),
    'snapshots.getArchive': async () => { const a = (await w.snapshots.listArchives(id))[0] as J; await w.snapshots.getArchive(id, String(a.version)); },
    'snapshots.deleteArchive': async () => { const a = (await w.snapshots.listArchives(id))[0] as J; await w.snapshots.deleteArchive(id, String(a.version)); },
    'snapshots.deleteAllArchives': () => w.snapshots.deleteAllArchives(id),
    'pause': () => w.pause(id),
    'resume': () => w.resume(id),
    'restart': () => w.restart(id),
    'stop': () => w.stop(id),
    'snapshots.restore': () => w.snapshots.restore(id),
    'start': () => w.start(id),
    'retryCreation': () => w.retryCreation(id),
    'workloads.delete': () => w.workloads.delete(id, wid),
    'workloads.deleteAll': () => w.workloads.deleteAll(id),
    'lifecycle.destroy': async () => { const other = await w.create({ image: 'debian-12', config: { wait_ready: false } }) as J; await w.lifecycle.destroy(other.id); },
    'delete': async () => { /* last, below */ },
  };
  const listed = surface(w);
  assert.deepEqual(listed.filter((m) => !calls[m]).sort(), [], 'SDK methods the test does not call');
  const failures: string[] = [];
  for (const [name, fn] of Object.entries(calls)) {
    try {
      await fn();
      if (NOT_SUPPORTED.has(name)) failures.push(`${name}: expected not_supported, got success`);
    } catch (e) {
      const err = e as { status?: number; code?: string; message?: string };
      if (NOT_SUPPORTED.has(name) && err.status === 501) continue;
      failures.push(`${name}: ${err.status ?? ''} ${err.code ?? ''} ${err.message ?? String(e)}`.slice(0, 240));
    }
  }

  // Runtime: every method against the running workspace.
  const rt = await runtimeOf(id);
  await rt.files.write({ fullPath: '/root/s/a.txt', content: 'hello surface', createDirs: true } as never);
  const rtCalls: Record<string, () => Promise<unknown>> = {
    'info': () => rt.info(),
    'targets': () => rt.targets(),
    'forTarget': async () => rt.forTarget('root'),
    'health': async () => assert.equal(await rt.health(), true),
    'ws': async () => { const s = rt.ws() as any; await s.connect?.(); s.close(); },
    'proxy': async () => {
      await w.workloads.create(id, { name: 'web-again', cmd: ['node', '-e', "require('http').createServer((q,s)=>s.end('ok')).listen(3000)"] });
      const p = rt.proxy(3000) as any;
      let body = '';
      for (let i = 0; i < 50 && body !== 'ok'; i++) { body = await (await p.fetch('/')).text(); if (body !== 'ok') await new Promise((f) => setTimeout(f, 100)); }
      assert.equal(body, 'ok');
    },
    'files.list': async () => {
      const r = await rt.files.list({ dirPath: '/root/s', includeExtensions: false } as never) as J;
      assert.equal(r.entries[0].extension, undefined, 'include_extensions:false honoured');
      const r2 = await rt.files.list({ dirPath: '/root/s', light: true, includeExtensions: true } as never) as J;
      assert.equal(r2.entries[0].extension, 'txt', 'include_extensions:true honoured on light entries');
    },
    'files.stream': async () => { const got: J[] = []; for await (const e of rt.files.stream({ dirPath: '/root/s' } as never)) got.push(e as J); assert.ok(got.some((e) => e.name === 'a.txt')); },
    'files.read': async () => assert.match(String(((await rt.files.read({ filePath: '/root/s/a.txt' } as never)) as J).content), /hello/),
    'files.write': () => rt.files.write({ fullPath: '/root/s/b.txt', content: 'b' } as never),
    'files.mkdir': () => rt.files.mkdir({ path: '/root/s/d' }),
    'files.stat': () => rt.files.stat({ path: '/root/s/a.txt' }),
    'files.delete': () => rt.files.delete({ path: '/root/s/b.txt' }),
    'search.init': () => rt.search.init(),
    'search.status': () => rt.search.status(),
    'search.content': () => rt.search.content({ query: 'hello', path: '/root/s' }),
    'search.files': () => rt.search.files({ query: 'a.txt', path: '/root/s' }),
    'exec.run': async () => assert.equal((await rt.exec.run(['true'])).exit_code, 0),
    'exec.stream': () => first(rt.exec.stream(['echo', 'x'])),
    'exec.list': () => rt.exec.list(),
    'exec.get': async () => { const task = await rt.exec.run(['true'], { keepLogs: true } as never) as J; await rt.exec.get(task.id); },
    'exec.subscribe': async () => { const task = await rt.exec.run(['sleep', '1'], { execMode: 'auto', timeoutSeconds: 5 } as never) as J; await first(rt.exec.subscribe(task.id), 3000).catch(() => null); },
    'exec.input': async () => { const task = await (rt.exec as any).run(['cat'], { background: true }).catch(() => null) as J | null; if (task?.status === 'running') await rt.exec.input(task.id, 'x'); },
    'exec.kill': async () => { const task = await rt.exec.list() as J[]; const live = task.find((x) => x.status === 'running'); if (live) await rt.exec.kill(live.id); },
    'exec.deleteAll': () => rt.exec.deleteAll(),
    'exec.parseSSE': async () => undefined, // private helper of exec.stream (declared private in the SDK's types)
    'terminal.create': async () => { const term = await rt.terminal.create() as J; await rt.terminal.scrollback(term.id); await rt.terminal.close(term.id); },
    'terminal.list': () => rt.terminal.list(),
    'terminal.scrollback': async () => undefined, // called with the terminal above
    'terminal.close': async () => undefined, // called with the terminal above
    'watcher.create': async () => { const wt = await rt.watcher.create({ path: '/root/s' }) as J; await rt.watcher.get(wt.id); await rt.watcher.delete(wt.id); },
    'watcher.list': () => rt.watcher.list(),
    'watcher.get': async () => undefined, // called with the watcher above
    'watcher.delete': async () => undefined, // called with the watcher above
    'transfer.download': async () => { const r = await rt.transfer.download({ paths: ['/root/s/a.txt'] } as never); assert.equal(r.status, 200); await r.arrayBuffer(); },
    'transfer.upload': async () => undefined, // bodies are the transfer suite's (sdk-runtime-transfer.test.ts)
    'desktop.status': async () => assert.equal(((await rt.desktop.status()) as J).supported, false),
    'desktop.enable': () => rt.desktop.enable(),
    'desktop.disable': () => rt.desktop.disable(),
    'desktop.credentials': () => rt.desktop.credentials(),
    'desktop.url': async () => rt.desktop.url(),
    'desktop.tunnel': () => (rt.desktop as any).tunnel({ port: 0 }).then((tn: J) => tn.close?.()),
  };
  assert.deepEqual(surface(rt).filter((m) => !rtCalls[m]).sort(), [], 'Runtime methods the test does not call');
  for (const [name, fn] of Object.entries(rtCalls)) {
    try {
      await fn();
      if (RUNTIME_NOT_SUPPORTED.has(name)) failures.push(`rt.${name}: expected not_supported, got success`);
    } catch (e) {
      const err = e as { status?: number; message?: string };
      // desktop.tunnel reads status() first and refuses on supported:false in the SDK itself.
      if (RUNTIME_NOT_SUPPORTED.has(name) && (err.status === 501 || /not offered|does not provide a desktop/.test(String(err.message)))) continue;
      failures.push(`rt.${name}: ${err.status ?? ''} ${err.message ?? String(e)}`.slice(0, 240));
    }
  }
  await w.delete(id);
  t.diagnostic(`${Object.keys(calls).length} workspace methods, ${Object.keys(rtCalls).length} runtime methods; not_supported: ${[...NOT_SUPPORTED, ...[...RUNTIME_NOT_SUPPORTED].map((m) => `rt.${m}`)].join(', ')}`);
  assert.deepEqual(failures, []);
});
