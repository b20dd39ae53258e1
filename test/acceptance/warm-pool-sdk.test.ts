/**
 * Warm pools through the official SDK against a real `hearth serve`
 * (runc, nftables): a create of a shape seen before claims a pre-started
 * sandbox, and at `ready` everything about it is the new workspace's —
 * id, IP (its slot's), host name, /etc/hosts, limits, firewall policy and
 * agent secret (the pool's is refused) — with nothing of anyone before it.
 * The pool refills, survives a kill -9 of hearthd, and leaves nothing on
 * the host once hearthd stops (h.stop() asserts it); `--warm-pool 0` runs
 * no pool at all.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Oblien, Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';

let h: HearthInstance;
let client: Oblien;

before(async () => {
  if (needsRoot) return;
  h = await startHearth({ extraArgs: ['--warm-pool', '2'] });
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

interface PoolRow { id: string; slot_index: number; secret: string; state: string }

function poolRows(inst: HearthInstance): PoolRow[] {
  const db = new Database(path.join(inst.dataDir, 'hearth.db'), { readonly: true });
  try {
    return db.prepare('SELECT id, slot_index, secret, state FROM warm_pool ORDER BY created_at').all() as PoolRow[];
  } finally {
    db.close();
  }
}

const readyRows = (inst: HearthInstance) => poolRows(inst).filter((r) => r.state === 'ready');

function nftSet(inst: HearthInstance, set: string): string {
  return execFileSync('nft', ['list', 'set', 'inet', `hearth_${inst.bridge}`, set], { encoding: 'utf8' });
}

async function runtimeOf(id: string): Promise<Runtime> {
  const { token } = await client.workspaces.apiAccess.enable(id) as { token: string };
  return new Runtime({ token, baseUrl: h.runtime });
}

const SHAPE = { cpus: 1, memory_mb: 384, disk_size_mb: 512 };

test('a create claims a pooled sandbox and, at ready, all of it is the new workspace\'s', { skip: needsRoot, timeout: 180_000 }, async () => {
  // The first create of a shape is cold, and makes the shape's demand.
  const first = await client.workspaces.create({ image: 'debian-12', config: { ...SHAPE } } as never) as Record<string, any>;
  const rt1 = await runtimeOf(first.id);
  await rt1.files.write({ fullPath: '/root/first.txt', content: 'of the first tenant' });
  const pooled = await waitUntil('a pooled sandbox of the shape', async () => readyRows(h)[0] ?? null, 60_000, 100);
  assert.equal(pooled.state, 'ready');

  const ws = await client.workspaces.create({ image: 'debian-12', slug: 'pooled-b', config: { ...SHAPE, env: ['GREETING=hello'], allow_internet: true } } as never) as Record<string, any>;
  assert.equal(ws.id, pooled.id, 'the create took the pooled sandbox');
  assert.equal(ws.status, 'running');
  const rt = await runtimeOf(ws.id);
  const r = await rt.exec.run(['sh', '-c', [
    'hostname', 'cat /etc/hostname', 'grep -c pooled-b /etc/hosts',
    'cat /sys/fs/cgroup/memory/memory.limit_in_bytes', 'cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us | tr "\\n" " "; echo', 'echo "root:$(ls -A /root | grep -v "^\\." | tr "\\n" " ")"', 'ip -4 -o addr show eth0 | tr -s " " | cut -d" " -f4',
  ].join('; ')]);
  const [hostname, etcHostname, hostsCount, memLimit, cpu, rootLs, addr] = (r.stdout ?? '').split('\n');
  assert.equal(hostname, 'pooled-b', 'the kernel host name is the workspace\'s');
  assert.equal(etcHostname, 'pooled-b');
  assert.equal(hostsCount, '1', '/etc/hosts names the workspace');
  assert.equal(Number(memLimit), 384 * 1024 * 1024, 'the memory limit is the shape\'s');
  assert.equal(cpu, '1024 100000 ', 'the CPU weight is every workspace\'s again (a pooled sandbox waits at the lowest) and the quota the shape\'s');
  assert.equal(rootLs, 'root:', 'nothing of anyone in /root');
  assert.equal(addr?.split('/')[0], ws.info.internal_ip, 'the IP is the slot\'s');
  // The firewall policy is the workspace's (open egress), not the pool's air gap.
  assert.match(nftSet(h, 'egress_open'), new RegExp(ws.info.internal_ip.replace(/\./g, '\\.')));
  assert.doesNotMatch(nftSet(h, 'egress_internal'), new RegExp(`\\b${ws.info.internal_ip.replace(/\./g, '\\.')}\\b`));
  // The pool's secret is refused from now on; the workspace's works.
  const agent = `http://${ws.info.internal_ip}:9990`;
  assert.equal((await fetch(`${agent}/health`, { headers: { authorization: `Bearer ${pooled.secret}` } })).status, 401, 'the pool secret is forgotten');
  const claimAgain = await fetch(`${agent}/_hearth/claim`, { method: 'POST', headers: { authorization: `Bearer ${pooled.secret}`, 'content-type': 'application/json' }, body: JSON.stringify({ secret: 'x'.repeat(40) }) });
  assert.equal(claimAgain.status, 401);
  // The pool refills (one at a time, after the creates).
  await waitUntil('the pool to refill', async () => readyRows(h).some((p) => p.id !== pooled.id) || null, 60_000, 100);
  await client.workspaces.delete(ws.id);
  await client.workspaces.delete(first.id);
});

test('kill -9 of hearthd: the pooled sandbox is adopted and can be claimed', { skip: needsRoot, timeout: 180_000 }, async () => {
  const ready = await waitUntil('a ready pooled sandbox', async () => readyRows(h)[0] ?? null, 60_000, 100);
  await h.crashAndRestart();
  assert.ok(h.logs.join('').includes('"pool_adopted":1') || h.logs.join('').includes('"pool_adopted":2'), 'the reconcile summary reports the adoption');
  assert.ok(poolRows(h).some((p) => p.id === ready.id), 'its row survived');
  const ws = await client.workspaces.create({ image: 'debian-12', config: { ...SHAPE } } as never) as Record<string, any>;
  assert.equal(ws.id, ready.id, 'the adopted sandbox was handed out');
  const rt = await runtimeOf(ws.id);
  assert.equal((await rt.exec.run(['hostname'])).stdout?.trim(), ws.id.replace('_', '-'));
  await client.workspaces.delete(ws.id);
});

test('--warm-pool 0: no pooled sandbox, creates work', { skip: needsRoot, timeout: 120_000 }, async () => {
  const off = await startHearth({ extraArgs: ['--warm-pool', '0'] });
  try {
    const c = new Oblien({ clientId: off.clientId, clientSecret: off.clientSecret, baseUrl: off.api });
    const a = await c.workspaces.create({ image: 'debian-12', config: { ...SHAPE } } as never) as Record<string, any>;
    const b = await c.workspaces.create({ image: 'debian-12', config: { ...SHAPE } } as never) as Record<string, any>;
    assert.equal(a.status, 'running');
    assert.equal(b.status, 'running');
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(poolRows(off), []);
  } finally {
    await off.stop();
  }
});
