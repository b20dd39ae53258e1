/**
 * Snapshots through the official SDK (`client.workspaces.snapshots.create`
 * / `.restore`) against a real `hearth serve` with the container driver:
 * files written after a snapshot are gone after restore, files from before
 * it are back; a new workspace created from a snapshot (`image:
 * "snapshot:<id>"`) starts with its files; a permanent workspace's files
 * survive stop/start and a hearthd crash. The list/get/delete routes are
 * Hearth extensions (the SDK has none) and are called over HTTP.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Oblien, Runtime, ConflictError, ValidationError, NotFoundError } from 'oblien';
import fs from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { readTar } from '../../src/host/images/oci/tar.ts';
import { needsRoot } from '../helpers/root.ts';

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

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.api}${path}`, {
    method,
    headers: { 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

async function sh(rt: Runtime, script: string): Promise<string> {
  const r = await rt.exec.run(['sh', '-c', script]);
  assert.equal(r.exit_code, 0, `${script}: ${r.stderr}`);
  return r.stdout ?? '';
}

const STATE = 'for f in /data/before /data/after /etc/hearth-deleted; do if [ -e $f ]; then echo "$f=$(cat $f)"; else echo "$f=-"; fi; done; ls /data';

test('snapshot round trip: files after the snapshot are gone after restore, files before it are intact', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '15m' } } as never) as Record<string, any>;
  const rt = await runtimeFor(ws.id);
  await sh(rt, 'mkdir -p /data && echo one > /data/before && echo doomed > /etc/hearth-deleted && mkdir -p /data/dir && echo x > /data/dir/x');

  const created = await client.workspaces.snapshots.create(ws.id) as Record<string, any>;
  assert.equal(created.success, true);
  const snap = created.snapshot;
  assert.match(snap.id, /^snap_[a-z0-9]{20}$/);
  assert.equal(snap.status, 'ready');
  assert.deepEqual(snap.kinds, ['filesystem']);
  assert.equal(snap.memory, false, 'containers capture files, not memory');
  assert.ok(snap.size > 0);
  assert.equal(snap.image_ref, `snapshot:${snap.id}`);
  assert.equal((await client.workspaces.get(ws.id) as Record<string, any>).status, 'running', 'after defaults to resume');

  // After the snapshot: change a file, add one, delete one (a whiteout in the upper dir), replace a dir.
  await sh(rt, 'echo two > /data/before && echo new > /data/after && rm /etc/hearth-deleted && rm -r /data/dir && echo file > /data/dir');
  assert.equal(await sh(rt, STATE), '/data/before=two\n/data/after=new\n/etc/hearth-deleted=-\nafter\nbefore\ndir\n');

  const restored = await client.workspaces.snapshots.restore(ws.id) as Record<string, any>;
  assert.equal(restored.restored, true);
  assert.equal(restored.snapshot.id, snap.id);
  const rt2 = await runtimeFor(ws.id);
  assert.equal(await sh(rt2, STATE), '/data/before=one\n/data/after=-\n/etc/hearth-deleted=doomed\nbefore\ndir\n');
  assert.equal(await sh(rt2, 'cat /data/dir/x'), 'x\n');
  const got = await client.workspaces.get(ws.id) as Record<string, any>;
  assert.equal(got.status, 'running');
  assert.equal(got.info.internal_ip, ws.info.internal_ip, 'same workspace, same address');

  // Extensions: list and get.
  const list = await api('GET', `/workspace/${ws.id}/snapshots`);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.snapshots.map((s: { id: string }) => s.id), [snap.id]);
  const one = await api('GET', `/workspace/${ws.id}/snapshots/${snap.id}`);
  assert.equal(one.body.id, snap.id);

  // A second snapshot; restore with snapshot_id picks an older one.
  await sh(rt2, 'echo three > /data/before');
  const second = (await client.workspaces.snapshots.create(ws.id) as Record<string, any>).snapshot;
  await sh(rt2, 'echo four > /data/before');
  await client.workspaces.snapshots.restore(ws.id);
  assert.equal(await sh(await runtimeFor(ws.id), 'cat /data/before'), 'three\n', 'restore takes the latest');
  const older = await api('POST', `/workspace/${ws.id}/restore`, { snapshot_id: snap.id });
  assert.equal(older.status, 200, JSON.stringify(older.body));
  assert.equal(await sh(await runtimeFor(ws.id), 'cat /data/before'), 'one\n');

  const del = await api('DELETE', `/workspace/${ws.id}/snapshots/${second.id}`);
  assert.equal(del.status, 200);
  assert.equal((await api('GET', `/workspace/${ws.id}/snapshots/${second.id}`)).status, 404);
  await client.workspaces.delete(ws.id);
  // Snapshots outlive their workspace, and are listed on the account.
  const mine = await api('GET', '/snapshots');
  assert.ok(mine.body.snapshots.some((s: { id: string }) => s.id === snap.id));
  assert.equal((await api('DELETE', `/snapshots/${snap.id}`)).status, 200);
});

test('a new workspace created from a snapshot starts with its contents; the snapshot stays put', { skip: needsRoot }, async () => {
  const src = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m' } } as never) as Record<string, any>;
  const rt = await runtimeFor(src.id);
  await sh(rt, 'mkdir -p /srv/app && echo "console.log(6*7)" > /srv/app/main.js && rm /etc/issue');
  const snap = (await client.workspaces.snapshots.create(src.id) as Record<string, any>).snapshot;
  await sh(rt, 'echo later > /srv/app/later');

  const clone = await client.workspaces.create({ image: snap.image_ref, config: { ttl: '15m' } } as never) as Record<string, any>;
  assert.equal(clone.ready, true);
  assert.equal(clone.image, `snapshot:${snap.id}`);
  const crt = await runtimeFor(clone.id);
  const out = await crt.exec.run(['node', '/srv/app/main.js']);
  assert.equal(out.stdout, '42\n', out.stderr);
  assert.equal(await sh(crt, 'test -e /srv/app/later && echo yes || echo no; test -e /etc/issue && echo yes || echo no'), 'no\nno\n',
    'files written after the snapshot are not there; files deleted before it stay deleted');
  // The clone's writes are its own.
  await sh(crt, 'echo mine > /srv/app/main.js');
  assert.equal(await sh(rt, 'cat /srv/app/main.js'), 'console.log(6*7)\n');
  const clone2 = await client.workspaces.create({ image: snap.image_ref, config: { ttl: '15m' } } as never) as Record<string, any>;
  assert.equal(await sh(await runtimeFor(clone2.id), 'cat /srv/app/main.js'), 'console.log(6*7)\n', 'the snapshot itself is unchanged');

  // A snapshot in use as a base cannot be deleted.
  const refused = await api('DELETE', `/snapshots/${snap.id}`);
  assert.equal(refused.status, 409);
  assert.match(refused.body.message, new RegExp(`is the base of workspaces? .*${clone.id}`));
  await client.workspaces.delete(clone.id);
  await client.workspaces.delete(clone2.id);
  assert.equal((await api('DELETE', `/snapshots/${snap.id}`)).status, 200);
  await client.workspaces.delete(src.id);
});

test('after: "stop" leaves the workspace stopped; restore into a stopped workspace keeps it stopped', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never) as Record<string, any>;
  const rt = await runtimeFor(ws.id);
  await sh(rt, 'echo kept > /root/file');
  await client.workspaces.snapshots.create(ws.id, { after: 'stop' });
  assert.equal((await client.workspaces.get(ws.id) as Record<string, any>).status, 'stopped');
  await client.workspaces.start(ws.id);
  await sh(await runtimeFor(ws.id), 'echo changed > /root/file');
  await client.workspaces.stop(ws.id);
  await client.workspaces.snapshots.restore(ws.id);
  assert.equal((await client.workspaces.get(ws.id) as Record<string, any>).status, 'stopped');
  await client.workspaces.start(ws.id);
  assert.equal(await sh(await runtimeFor(ws.id), 'cat /root/file'), 'kept\n');
  await client.workspaces.delete(ws.id);
});

test('a permanent workspace keeps its files across stop/start and a crash of hearthd', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never) as Record<string, any>;
  await sh(await runtimeFor(ws.id), 'mkdir -p /var/lib/app && echo durable > /var/lib/app/state');
  await client.workspaces.stop(ws.id);
  await client.workspaces.start(ws.id);
  assert.equal(await sh(await runtimeFor(ws.id), 'cat /var/lib/app/state'), 'durable\n');
  await h.crashAndRestart();
  assert.equal(await sh(await runtimeFor(ws.id), 'cat /var/lib/app/state'), 'durable\n');
  await client.workspaces.delete(ws.id);
});

test('archives: the workspace\'s changes exported as a versioned OCI layer file, listed, and deleted with or without the file', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '10m' } } as never) as Record<string, any>;
  await sh(await runtimeFor(ws.id), 'mkdir -p /srv/app/cache && echo main > /srv/app/main.js && echo tmp > /srv/app/cache/x && ln /srv/app/main.js /srv/app/linked.js && rm /etc/issue && rm -rf /etc/apt && mkdir /etc/apt && echo fresh > /etc/apt/only');
  const a = await client.workspaces.snapshots.createArchive(ws.id, { version: 'release-1', vm_paths: ['/srv/app', '/etc'], exclude_vm_paths: ['/srv/app/cache'] }) as Record<string, any>;
  assert.deepEqual([a.version, a.status, a.format], ['release-1', 'ready', 'tar.gz']);
  assert.ok(a.file.startsWith(h.dataDir), a.file);
  const entries: string[] = [];
  async function* gunzipped() { yield* createReadStream(a.file).pipe(createGunzip()) as AsyncIterable<Buffer>; }
  for await (const { entry } of readTar(gunzipped())) entries.push(`${entry.type} ${entry.path}${entry.linkpath ? ` -> ${entry.linkpath}` : ''}`);
  for (const want of ['dir srv/', 'dir srv/app/', 'file srv/app/linked.js', 'hardlink srv/app/main.js -> srv/app/linked.js', 'file etc/.wh.issue', 'dir etc/apt/', 'file etc/apt/.wh..wh..opq', 'file etc/apt/only']) {
    assert.ok(entries.includes(want), `${want} in ${JSON.stringify(entries)}`);
  }
  assert.ok(!entries.some((e) => e.includes('cache')), 'exclude_vm_paths left out');
  assert.ok(!entries.some((e) => e.includes('root/') || e.includes('tmp/')), 'only vm_paths');

  const v2 = await client.workspaces.snapshots.createArchive(ws.id) as Record<string, any>;
  assert.equal(v2.version, 'v1', 'default versions count up');
  assert.deepEqual((await client.workspaces.snapshots.listArchives(ws.id)).map((x: any) => x.version).sort(), ['release-1', 'v1']);
  assert.equal((await client.workspaces.snapshots.getArchive(ws.id, 'release-1')).sha256, a.sha256);
  await client.workspaces.snapshots.deleteArchive(ws.id, 'release-1');
  await fs.access(a.file);
  await client.workspaces.snapshots.deleteAllArchives(ws.id, { delete_files: true });
  await assert.rejects(fs.access(v2.file), /ENOENT/);
  assert.deepEqual(await client.workspaces.snapshots.listArchives(ws.id), []);
  await fs.rm(a.file);
  await client.workspaces.delete(ws.id);
});

test('bad snapshot requests get contract errors', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '10m' } } as never) as Record<string, any>;
  await assert.rejects(client.workspaces.snapshots.restore(ws.id), (e: any) => e instanceof ConflictError && /has no snapshot to restore/.test(e.message));
  await assert.rejects(client.workspaces.snapshots.create(ws.id, { after: 'later' } as never), (e: any) => e instanceof ValidationError || (e.status === 400 && e.code === 'validation_error'));
  await assert.rejects(client.workspaces.snapshots.create('ws_doesnotexist'), NotFoundError);
  const bogus = await api('POST', `/workspace/${ws.id}/restore`, { snapshot_id: 'snap_doesnotexist000000000' });
  assert.equal(bogus.status, 404);
  // A workspace from a snapshot that does not exist is refused before anything is created.
  const total = (await client.workspaces.list({ limit: 500 } as never) as Record<string, any>).total;
  await assert.rejects(client.workspaces.create({ image: 'snapshot:snap_doesnotexist000000000' } as never), (e: any) => e.status === 400 && /no snapshot/.test(e.message));
  await assert.rejects(client.workspaces.create({ image: 'snapshot:../../etc' } as never), (e: any) => e.status === 400);
  assert.equal((await client.workspaces.list({ limit: 500 } as never) as Record<string, any>).total, total);
  await client.workspaces.delete(ws.id);
});
