/**
 * Two real hearthd (`hearth serve --store postgresql://… --name …`, each with
 * its own data dir, bridge, subnet and nft tables) on one PostgreSQL store:
 * 20 parallel creates through both against a namespace limit of 5 create
 * exactly 5 (the limit holds across processes, each workspace on its own
 * slot); both hosts are registered and heartbeat, the admin endpoint on
 * either shows both with their load, and `hearth hosts` reads and drains
 * them from the store, and a drained host's hearthd refuses creates while the
 * other's still takes them. Until the API-node/host split, each hearthd runs what
 * it created, so the test deletes each workspace through its own hearthd.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Oblien } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { freshPostgresUrl } from '../helpers/store.ts';
import { waitUntil } from '../helpers/wait.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');
let url: string;
let nodes: HearthInstance[] = [];

before(async () => {
  if (needsRoot) return;
  url = await freshPostgresUrl();
  // One at a time: the first migrates the fresh database (concurrent starts are also safe, the migrator locks).
  nodes.push(await startHearth({ store: { url }, extraArgs: ['--name', 'pg-host-a'] }));
  // The second finds the first's admin key on the shared store and makes none: one set of credentials for both.
  nodes.push(await startHearth({ store: { url }, extraArgs: ['--name', 'pg-host-b'], credentials: { clientId: nodes[0]!.clientId, clientSecret: nodes[0]!.clientSecret } }));
});
after(async () => {
  for (const n of nodes) await n.stop();
  nodes = [];
});

const headers = (n: HearthInstance) => ({ 'x-client-id': n.clientId, 'x-client-secret': n.clientSecret, 'content-type': 'application/json' });

test('20 parallel creates through two hearthd on one PostgreSQL against a namespace limit of 5 create exactly 5', { skip: needsRoot }, async () => {
  const [a, b] = nodes as [HearthInstance, HearthInstance];
  const admin = new Oblien({ clientId: a.clientId, clientSecret: a.clientSecret, baseUrl: a.api });
  await admin.namespaces.create({ name: 'capped', slug: 'capped', resource_limits: { max_workspaces: 5 } } as never);
  const results = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const n = nodes[i % 2]!;
    const res = await fetch(`${n.api}/workspace`, { method: 'POST', headers: headers(n), body: JSON.stringify({ image: 'debian-12', namespace: 'capped', config: { ttl: '15m', cpus: 1, memory_mb: 256 } }) });
    const body = await res.json() as { workspace?: { id: string }; id?: string; error?: { code?: string }; code?: string };
    return { node: n, status: res.status, id: body.workspace?.id ?? body.id, body };
  }));
  const created = results.filter((r) => r.status === 200 || r.status === 201);
  const refused = results.filter((r) => r.status >= 400);
  try {
    assert.equal(created.length, 5, `created ${created.length}; refusals: ${JSON.stringify(refused.slice(0, 2).map((r) => r.body))}`);
    assert.ok(refused.every((r) => r.status === 403 || r.status === 409 || r.status === 429), JSON.stringify(refused.map((r) => r.status)));
    assert.ok(created.some((r) => r.node === a) || created.some((r) => r.node === b));

    // Both hosts heartbeat into the store; either API answers for both, load included.
    const hosts = await waitUntil('both hosts up with the 5 workspaces', async () => {
      const res = await (await fetch(`${b.api}/hearth/hosts`, { headers: headers(b) })).json() as { hosts: { name: string; health: string; load: { workspaces: number }; drivers: string[] }[] };
      const total = res.hosts.reduce((s, h) => s + h.load.workspaces, 0);
      return res.hosts.length === 2 && res.hosts.every((h) => h.health === 'up') && total === 5 ? res.hosts : null;
    }, 15_000);
    assert.deepEqual(hosts.map((h) => h.name), ['pg-host-a', 'pg-host-b']);
    for (const h of hosts) assert.ok(h.drivers.includes('container'), JSON.stringify(h));
    const perNode = (n: HearthInstance) => created.filter((r) => r.node === n).length;
    assert.deepEqual(hosts.map((h) => h.load.workspaces), [perNode(a), perNode(b)], 'each workspace is on the host that created it');

    // `hearth hosts` reads the store directly, and drains through it.
    const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(repo, 'bin/hearth.mjs'), 'hosts', ...args, '--store', url, '--json'], { encoding: 'utf8' });
    const listed = cli();
    assert.equal(listed.status, 0, listed.stderr);
    assert.deepEqual((JSON.parse(listed.stdout) as { hosts: { name: string }[] }).hosts.map((h) => h.name), ['pg-host-a', 'pg-host-b']);
    const drained = cli('drain', 'pg-host-b');
    assert.equal(drained.status, 0, drained.stderr);
    assert.equal((JSON.parse(drained.stdout) as { host: { status: string } }).host.status, 'draining');
    const seen = await (await fetch(`${a.api}/hearth/hosts`, { headers: headers(a) })).json() as { hosts: { name: string; status: string }[] };
    assert.equal(seen.hosts.find((h) => h.name === 'pg-host-b')!.status, 'draining', 'the other API sees the drain at once');
    assert.equal(cli('drain', 'no-such-host').status, 1);
    // Drained, the host's hearthd takes no create; the other one still does.
    const plain = (n: HearthInstance) => fetch(`${n.api}/workspace`, { method: 'POST', headers: headers(n), body: JSON.stringify({ image: 'debian-12', config: { ttl: '15m', cpus: 1, memory_mb: 256 } }) });
    const onB = await plain(b);
    assert.equal(onB.status, 409);
    assert.equal((await onB.json() as { code: string }).code, 'SANDBOX_LIMIT_REACHED');
    const onA = await plain(a);
    assert.equal(onA.status, 201);
    created.push({ node: a, status: 201, id: (await onA.json() as { workspace: { id: string } }).workspace.id, body: {} });
  } finally {
    // Each workspace runs on the hearthd that created it: delete it there.
    for (const r of created) await fetch(`${r.node.api}/workspace/${r.id}`, { method: 'DELETE', headers: headers(r.node) });
  }
});
