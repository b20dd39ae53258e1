/**
 * Hosts on the store (src/control/hosts.ts) and their admin endpoint, on
 * SQLite and PostgreSQL: a host registers its capacity and heartbeats, is
 * down once its heartbeat is stale, keeps `draining` across a restart (and
 * refuses creates while draining), and
 * shows the load of the workspaces placed on it; GET /hearth/hosts and
 * POST /hearth/hosts/:name/drain|undrain answer admin keys only.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HostsService, validateHostName, type HostRegistration } from '../../src/control/hosts.ts';
import { createApiKey } from '../../src/auth/keys.ts';
import { place } from '../../src/core/placement.ts';
import { startApi } from './api-harness.ts';

const local = (over: Partial<HostRegistration> = {}): HostRegistration => ({
  name: 'local', role: 'both', address: null, version: null,
  capacity: { cpus: 2, memoryMb: 4096, diskMb: 20_000 }, drivers: ['container'], images: ['debian-12'], ...over,
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`hosts on ${dialect}`, () => {
    test('register, heartbeat, down when stale, drain survives a re-register, load from placed workspaces', async () => {
      process.env.HEARTH_TEST_STORE = dialect;
      const h = await startApi();
      try {
        const t0 = new Date(Date.now() - 60_000);
        await h.hosts.register(local(), t0);
        let [row] = await h.hosts.list();
        assert.equal(row!.health, 'down', 'a heartbeat a minute old is down');
        await h.hosts.heartbeat('local', ['debian-12', 'node-20']);
        [row] = await h.hosts.list();
        assert.equal(row!.health, 'up');
        assert.deepEqual(row!.images, ['debian-12', 'node-20']);
        assert.equal(row!.registered_at, t0.toISOString(), 'a heartbeat keeps the registration time');

        const created = await h.call('POST', '/workspace', h.admin, { image: 'debian-12', config: { cpus: 1, memory_mb: 512, disk_size_mb: 2048 } });
        assert.equal(created.status, 201, JSON.stringify(created.json));
        [row] = await h.hosts.list();
        assert.deepEqual(row!.load, { workspaces: 1, running: 1, cpus: 1, memory_mb: 512, disk_mb: 2048 });
        assert.deepEqual(row!.free, { cpus: 2 * 4 - 1, memory_mb: 4096 - 512, disk_mb: 20_000 - 2048 });

        await h.hosts.setDraining('local', true);
        const refused = await h.call('POST', '/workspace', h.admin, { image: 'debian-12' });
        assert.equal(refused.status, 409, 'a draining host takes no new workspace');
        assert.equal(refused.json.code, 'SANDBOX_LIMIT_REACHED');
        assert.match(refused.json.message, /draining/);
        await h.hosts.register(local({ capacity: { cpus: 4, memoryMb: 8192, diskMb: 20_000 } }));
        [row] = await h.hosts.list();
        assert.equal(row!.status, 'draining', 'a restart does not undo a drain');
        assert.equal(row!.capacity.cpus, 4, 'a restart refreshes the capacity');
        const view = await h.hosts.placementView();
        assert.deepEqual(place({ cpus: 1, memoryMb: 256, diskMb: 1024, driver: 'container', image: 'debian-12', namespace: null }, view, { now: Date.now() }), { host: null, reasons: { local: 'draining' } });
        await assert.rejects(h.hosts.heartbeat('nope'), /host "nope" not found/);
        await h.hosts.setDraining('local', false);
        assert.equal((await h.call('POST', '/workspace', h.admin, { image: 'debian-12' })).status, 201, 'undrained, it takes creates again');
      } finally {
        await h.close();
        delete process.env.HEARTH_TEST_STORE;
      }
    });

    test('the admin endpoint lists and drains; other credentials are refused', async () => {
      process.env.HEARTH_TEST_STORE = dialect;
      const h = await startApi();
      try {
        await h.hosts.register(local());
        await h.hosts.register(local({ name: 'h2', drivers: ['container', 'microvm'] }));
        const list = await h.call('GET', '/hearth/hosts', h.admin);
        assert.equal(list.status, 200);
        assert.deepEqual(list.json.hosts.map((x: any) => [x.name, x.status, x.health]), [['h2', 'active', 'up'], ['local', 'active', 'up']]);
        const drained = await h.call('POST', '/hearth/hosts/h2/drain', h.admin);
        assert.equal(drained.status, 200);
        assert.equal(drained.json.host.status, 'draining');
        assert.equal((await h.call('POST', '/hearth/hosts/h2/undrain', h.admin)).json.host.status, 'active');
        const missing = await h.call('POST', '/hearth/hosts/ghost/drain', h.admin);
        assert.equal(missing.status, 404);
        assert.equal(missing.json.success, false);

        const key = await createApiKey(h.db, { name: 'plain', admin: false });
        const plain = { 'x-client-id': key.clientId, 'x-client-secret': key.clientSecret };
        assert.equal((await h.call('GET', '/hearth/hosts', plain)).status, 403);
        assert.equal((await h.call('POST', '/hearth/hosts/h2/drain', plain)).status, 403);
        assert.equal((await h.call('GET', '/hearth/hosts', {})).status, 401);
        assert.equal((await h.hosts.list()).find((x) => x.name === 'h2')!.status, 'active', 'a refused drain changed nothing');
      } finally {
        await h.close();
        delete process.env.HEARTH_TEST_STORE;
      }
    });
  });
}

test('host names are DNS-label-like', () => {
  for (const ok of ['a', 'host-1', 'x'.repeat(63)]) assert.equal(validateHostName(ok), ok);
  for (const bad of ['', '-a', 'a-', 'A', 'a_b', 'a.b', 'x'.repeat(64), '../etc']) assert.throws(() => validateHostName(bad), /host name/, bad);
});

test('a fresh store lists no hosts', async () => {
  const h = await startApi();
  try {
    assert.ok(h.hosts instanceof HostsService);
    assert.deepEqual((await h.call('GET', '/hearth/hosts', h.admin)).json.hosts, []);
  } finally {
    await h.close();
  }
});
