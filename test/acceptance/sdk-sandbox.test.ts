/**
 * The official `oblien` SDK, unmodified, against a real `hearth serve` with
 * the container driver: the seed's flows, limits, bad input, TTL cleanup.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Oblien, Runtime, NotFoundError, ValidationError, AuthenticationError } from 'oblien';
import { connect } from 'hearth/sdk';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';
import { leftovers } from '../helpers/leaks.ts';

let h: HearthInstance;
let client: Oblien;

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

async function runtimeFor(id: string): Promise<Runtime> {
  const { token } = await client.workspaces.apiAccess.enable(id) as { token: string };
  return new Runtime({ token, baseUrl: h.runtime });
}

test('throwaway sandbox: create air-gapped with TTL, write a file, run it with node', { skip: needsRoot }, async () => {
  const sandbox = await client.workspaces.create({
    image: 'node-20',
    config: { ttl: '5m', remove_on_exit: true, allow_internet: false },
  } as never) as Record<string, any>;
  assert.equal(sandbox.ready, true, 'the create answer itself is ready (fast path)');
  assert.equal(sandbox.mode, 'temporary');
  assert.match(sandbox.info.internal_ip, /^10\.\d+\.\d+\.\d+$/);
  assert.equal(sandbox.lifecycle.remove_on_exit, true);
  assert.ok(Date.parse(sandbox.lifecycle.ttl_expires_at) > Date.now() + 4 * 60_000);

  const rt = await runtimeFor(sandbox.id);
  const code = 'const os = require("os"); console.log(JSON.stringify({ sum: 6 * 7, host: os.hostname(), v: process.version }));';
  const w = await rt.files.write({ fullPath: '/app/index.js', content: code });
  assert.equal(w.success, true);
  const result = await rt.exec.run(['node', '/app/index.js']);
  assert.equal(result.exit_code, 0, result.stderr);
  const out = JSON.parse(result.stdout!);
  assert.equal(out.sum, 42);
  assert.match(out.v, /^v20\./);
  const read = await rt.files.read({ filePath: '/app/index.js' });
  assert.equal(read.content, code);

  const failing = await rt.exec.run(['sh', '-c', 'echo oops >&2; exit 3']);
  assert.equal(failing.exit_code, 3);
  assert.equal(failing.stderr, 'oops\n');

  await client.workspaces.delete(sandbox.id);
  await assert.rejects(client.workspaces.get(sandbox.id), NotFoundError);
  await assert.rejects(rt.exec.run(['true']), /revoked|not found|deleted/i, 'a deleted workspace\'s token stops working');
});

test('permanent workspace: requested size is visible and enforced by cgroups', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ name: 'production-api', image: 'node-20', mode: 'permanent', config: { cpus: 2, memory_mb: 4096 } } as never) as Record<string, any>;
  const got = await client.workspaces.get(ws.id) as Record<string, any>;
  assert.equal(got.mode, 'permanent');
  assert.deepEqual([got.resources.cpus, got.resources.memory_mb], [2, 4096]);
  assert.deepEqual([got.config.cpus, got.config.memory_mb], [2, 4096]);
  assert.equal(got.info.internal_ip, ws.info.internal_ip);
  const rt = await runtimeFor(ws.id);
  const r = await rt.exec.run(['sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us; hostname']);
  const [mem, quota, hostname] = r.stdout!.trim().split('\n');
  assert.equal(Number(mem), 4096 * 1024 * 1024);
  assert.equal(Number(quota), 200_000);
  assert.equal(hostname, 'production-api');
  await client.workspaces.delete(ws.id);
});

test('limits are real: memory past memory_mb is OOM-killed inside, a fork bomb hits the pids limit', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'python-3.11', config: { memory_mb: 128, pids_limit: 256, ttl: '10m' } } as never) as Record<string, any>;
  const rt = await runtimeFor(ws.id);
  const hog = await rt.exec.run(['python3', '-c', 'b = b"\\x01" * (400 << 20); print(len(b))'], { timeoutSeconds: 60 } as never);
  assert.notEqual(hog.exit_code, 0, 'allocating 400 MiB in a 128 MiB workspace must fail');
  assert.equal(hog.exit_code, 137, `killed by SIGKILL (OOM), got ${hog.exit_code}: ${hog.stderr}`);
  const fork = await rt.exec.run(['python3', '-c', [
    'import os, time',
    'pids = []',
    'err = None',
    'try:',
    '    for i in range(5000):',
    '        pid = os.fork()',
    '        if pid == 0:',
    '            time.sleep(60); os._exit(0)',
    '        pids.append(pid)',
    'except OSError as e:',
    '    err = e.errno',
    'print(len(pids), err)',
    'for p in pids: os.kill(p, 9)',
    'for p in pids: os.waitpid(p, 0)',
  ].join('\n')], { timeoutSeconds: 60 } as never);
  const [forked, errno] = fork.stdout!.trim().split(' ');
  assert.equal(errno, '11', `fork must fail with EAGAIN at the pids limit: ${fork.stdout} ${fork.stderr}`);
  assert.ok(Number(forked) < 256, `forked ${forked} processes under a limit of 256`);
  // The agent, and so the workspace, lives on.
  const after = await rt.exec.run(['echo', 'alive']);
  assert.equal(after.stdout, 'alive\n');
  assert.equal((await client.workspaces.get(ws.id) as Record<string, any>).status, 'running');
  await client.workspaces.delete(ws.id);
});

test('bad input gets the contract errors and creates nothing', { skip: needsRoot }, async () => {
  const before = (await client.workspaces.list({ limit: 500 } as never) as Record<string, any>).total;
  await assert.rejects(client.workspaces.create({ image: 'no-such-image-9' } as never), (e: any) => e instanceof ValidationError && /no-such-image-9/.test(e.message));
  await assert.rejects(client.workspaces.create({ image: 'node-20', config: { ttl: 'forever' } } as never), ValidationError);
  await assert.rejects(client.workspaces.create({ image: 'node-20', cpus: -1 } as never), ValidationError);
  await assert.rejects(client.workspaces.get('ws_doesnotexist'), NotFoundError);
  const wrong = new Oblien({ clientId: h.clientId, clientSecret: 'wrong', baseUrl: h.api });
  await assert.rejects(wrong.workspaces.list(), (e: any) => e instanceof AuthenticationError && e.status === 401);
  const missing = await fetch(`${h.api}/workspace`, { headers: { 'content-type': 'application/json' } });
  assert.equal(missing.status, 401);
  assert.equal((await missing.json()).code, 'missing_credentials');
  assert.equal((await client.workspaces.list({ limit: 500 } as never) as Record<string, any>).total, before);
  assert.deepEqual(await leftovers({ dataDir: h.dataDir, linkPrefix: h.linkPrefix, bridge: h.bridge }), []);
});

test('a TTL workspace disappears on time and leaves nothing on the host', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '3s', remove_on_exit: true } } as never) as Record<string, any>;
  assert.equal(ws.ready, true);
  const leftNow = await leftovers({ dataDir: h.dataDir, linkPrefix: h.linkPrefix, bridge: h.bridge });
  assert.ok(leftNow.length > 0, 'a running workspace is visible to the leak check (so the check can fail)');
  await waitUntil('the TTL workspace to be deleted', async () => {
    try {
      await client.workspaces.get(ws.id);
      return false;
    } catch (e) {
      if (e instanceof NotFoundError) return true;
      throw e;
    }
  }, 15_000, 200);
  assert.deepEqual(await leftovers({ dataDir: h.dataDir, linkPrefix: h.linkPrefix, bridge: h.bridge }), []);
});

test('hearth/sdk: seed code using client.workspaces.runtime(id) works unchanged', { skip: needsRoot }, async () => {
  const c = connect({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  const ws = await c.workspaces.create({ image: 'debian-12', config: { ttl: '5m' } } as never) as Record<string, any>;
  const rt = await c.workspaces.runtime(ws.id);
  assert.equal(await rt.health(), true);
  const r = await rt.exec.run(['cat', '/etc/debian_version']);
  assert.match(r.stdout!, /^12\./);
  // Rotating the token stops the old one at once.
  const { token: fresh } = await c.workspaces.apiAccess.rotateToken(ws.id) as { token: string };
  await assert.rejects(rt.exec.run(['true']), /revoked/);
  const rt2 = new Runtime({ token: fresh, baseUrl: h.runtime });
  assert.equal((await rt2.exec.run(['echo', 'ok'])).stdout, 'ok\n');
  await c.workspaces.delete(ws.id);
});

test('the workspace env (config.env) is in every process: exec and terminals, over the image\'s, never HEARTH_*', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({
    image: 'node-20', config: { ttl: '5m', cpus: 1, memory_mb: 256, env: { GREETING: 'hello', NODE_VERSION: 'mine', HEARTH_AGENT_SECRET: 'x' } },
  } as never) as Record<string, any>;
  const rt = await runtimeFor(ws.id);
  const r = await rt.exec.run(['sh', '-c', 'echo "$GREETING|$NODE_VERSION|${HEARTH_AGENT_SECRET:-none}"']);
  assert.equal(r.stdout, 'hello|mine|none\n');
  await client.workspaces.delete(ws.id);
});
