/**
 * The snapshot routes in process (fastify inject, SQLite :memory:, FakeHost):
 * ids, ownership, state, `after`, restore of the latest, deletion rules and
 * the contract's error bodies. The bytes are the host's; see
 * test/acceptance/snapshots-sdk.test.ts for the real thing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { Db } from '../../src/store/db.ts';
import { openTestStore } from '../helpers/store.ts';
import { TokenSigner } from '../../src/auth/jwt.ts';
import { ApiKeys, createApiKey } from '../../src/auth/keys.ts';
import { WorkspaceService, DEFAULT_SERVICE_OPTIONS } from '../../src/control/workspaces/index.ts';
import { NamespaceService } from '../../src/control/namespaces.ts';
import { UsageReports } from '../../src/control/usage.ts';
import { buildApi, type ApiApp } from '../../src/api/server.ts';
import { agentClientFor } from '../../src/control/workloads.ts';
import { defaultPublicServices } from '../../src/control/public-services.ts';
import { ERROR_STATUS } from '../../src/api/errors.ts';
import { SnapshotService, parseSnapshotRequest } from '../../src/control/snapshots.ts';
import { FakeHost } from './fake-host.ts';

let db: Db;
let api: ApiApp;
let host: FakeHost;
let auth: Record<string, string>;
let other: Record<string, string>;

before(async () => {
  db = await openTestStore();
  host = new FakeHost();
  const log = pino({ level: 'silent' });
  const namespaces = new NamespaceService(db, log, () => service);
  const service: WorkspaceService = new WorkspaceService(db, host, log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 2000 }, { admission: namespaces });
  const signer = new TokenSigner('test-secret');
  api = buildApi({ workspaces: service, namespaces, usage: new UsageReports(db), meter: null, agent: agentClientFor(host), publicServices: defaultPublicServices({ db, workspaces: service, log }), signer, keys: new ApiKeys(db, signer), snapshots: new SnapshotService(db, host, service, log), log, runtimeUrl: () => 'http://gw' });
  const key = await createApiKey(db, { name: 'admin', admin: true });
  auth = { 'x-client-id': key.clientId, 'x-client-secret': key.clientSecret };
  const key2 = await createApiKey(db, { name: 'other', admin: true });
  other = { 'x-client-id': key2.clientId, 'x-client-secret': key2.clientSecret };
});
after(async () => { await api.app.close(); await db.destroy(); });

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = auth) {
  const res = await api.app.inject({ method: method as 'GET', url, headers: { 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
  const json = res.json() as Record<string, any>;
  if (res.statusCode >= 400) {
    assert.equal(json.success, false);
    assert.equal(ERROR_STATUS[json.code as keyof typeof ERROR_STATUS], res.statusCode, `status of ${json.code}`);
  } else assert.equal(json.success, true);
  return { status: res.statusCode, json };
}

async function workspace(): Promise<string> {
  const { json } = await call('POST', '/workspace', { image: 'debian-12', config: {} });
  return json.workspace.id as string;
}

test('create, list, get, restore the latest, delete', async () => {
  const id = await workspace();
  const first = await call('POST', `/workspace/${id}/snapshot`, {});
  assert.equal(first.status, 201);
  const s1 = first.json.snapshot;
  assert.match(s1.id, /^snap_[a-z0-9]{20}$/);
  assert.deepEqual([s1.status, s1.workspace_id, s1.after, s1.kinds, s1.memory, s1.size, s1.image, s1.image_ref], ['ready', id, 'resume', ['filesystem'], false, 42, 'debian-12', `snapshot:${s1.id}`]);
  assert.equal(first.json.id, s1.id);
  await new Promise((r) => setTimeout(r, 5));
  const s2 = (await call('POST', `/workspace/${id}/snapshot`, { label: 'second' })).json.snapshot;
  assert.equal(s2.label, 'second');
  assert.deepEqual((await call('GET', `/workspace/${id}/snapshots`)).json.snapshots.map((s: any) => s.id), [s2.id, s1.id], 'newest first');
  assert.equal((await call('GET', `/workspace/${id}/snapshots/${s1.id}`)).json.id, s1.id);

  host.calls.length = 0;
  const r = await call('POST', `/workspace/${id}/restore`);
  assert.equal(r.json.snapshot.id, s2.id, 'the SDK restores the latest');
  assert.equal(r.json.workspace.id, id);
  assert.deepEqual(host.calls, [`stop ${id}`, `restore ${id} ${s2.id}`, `start ${id}`], 'a running sandbox is stopped, restored and started');
  host.calls.length = 0;
  await call('POST', `/workspace/${id}/restore`, { snapshot_id: s1.id });
  assert.deepEqual(host.calls.slice(1, 2), [`restore ${id} ${s1.id}`]);

  assert.equal((await call('DELETE', `/workspace/${id}/snapshots/${s1.id}`)).status, 200);
  assert.ok(host.calls.includes(`delete-snapshot ${s1.id}`));
  assert.equal((await call('GET', `/workspace/${id}/snapshots/${s1.id}`)).status, 404);
});

test('after: stop stops the workspace through the lifecycle; paused pauses it', async () => {
  const id = await workspace();
  await call('POST', `/workspace/${id}/snapshot`, { after: 'stop' });
  assert.equal((await call('GET', `/workspace/${id}`)).json.workspace.status, 'stopped');
  host.calls.length = 0;
  await call('POST', `/workspace/${id}/restore`);
  assert.deepEqual(host.calls.filter((c) => !c.startsWith('network')), [`restore ${id} ${host.calls.find((c) => c.startsWith('restore'))!.split(' ')[2]}`], 'a stopped workspace is only restored, not started');
  await call('POST', `/workspace/${id}/start`);
  await call('POST', `/workspace/${id}/snapshot`, { after: 'paused' });
  assert.equal((await call('GET', `/workspace/${id}`)).json.workspace.status, 'paused');
});

test('snapshots belong to their owner; a base snapshot cannot be deleted; bad input is refused', async () => {
  const id = await workspace();
  const snap = (await call('POST', `/workspace/${id}/snapshot`, {})).json.snapshot;
  assert.equal((await call('GET', `/snapshots/${snap.id}`, undefined, other)).status, 404, 'another key cannot see it');
  assert.equal((await call('DELETE', `/snapshots/${snap.id}`, undefined, other)).status, 404);
  assert.ok(!(await call('GET', '/snapshots', undefined, other)).json.snapshots.some((s: any) => s.id === snap.id));

  const clone = (await call('POST', '/workspace', { image: `snapshot:${snap.id}`, config: {} })).json.workspace;
  assert.equal(clone.image, `snapshot:${snap.id}`);
  const refused = await call('DELETE', `/snapshots/${snap.id}`);
  assert.equal(refused.status, 409);
  assert.equal(refused.json.code, 'invalid_state');
  assert.match(refused.json.message, new RegExp(`is the base of workspace ${clone.id}`));
  await call('DELETE', `/workspace/${clone.id}`);
  assert.equal((await call('DELETE', `/snapshots/${snap.id}`)).status, 200);

  const fresh = await workspace();
  const none = await call('POST', `/workspace/${fresh}/restore`);
  assert.deepEqual([none.status, none.json.code], [409, 'invalid_state']);
  assert.match(none.json.hint, /snapshots\.create/);
  assert.equal((await call('POST', `/workspace/${fresh}/snapshot`, { after: 'later' })).json.code, 'validation_error');
  assert.equal((await call('POST', `/workspace/ws_nope/snapshot`, {})).status, 404);
  assert.equal((await call('POST', `/workspace/${fresh}/restore`, { snapshot_id: 42 })).json.code, 'validation_error');
  assert.equal((await call('POST', '/workspace', { image: 'snapshot:snap_missing000000000000' })).json.code, 'validation_error');
});

test('a failed snapshot is recorded as failed with its error', async () => {
  const id = await workspace();
  const orig = host.snapshot.bind(host);
  host.snapshot = async () => { throw new Error('disk full'); };
  try {
    const r = await call('POST', `/workspace/${id}/snapshot`, {});
    assert.equal(r.status, 500);
    const list = (await call('GET', `/workspace/${id}/snapshots`)).json.snapshots;
    assert.deepEqual(list.map((s: any) => [s.status, s.error]), [['failed', 'disk full']]);
    assert.equal((await call('POST', `/workspace/${id}/restore`)).status, 409, 'a failed snapshot is never restored');
  } finally {
    host.snapshot = orig;
  }
});

test('archives: versions, listing, deletion that keeps or removes the file', async () => {
  const id = await workspace();
  const a1 = await call('POST', `/workspace/${id}/archives`, {});
  assert.equal(a1.status, 201);
  assert.deepEqual([a1.json.version, a1.json.status, a1.json.format, a1.json.size, a1.json.file], ['v1', 'ready', 'tar.gz', 100, `/fake/archives/${id}/v1.tar.gz`]);
  const tmp = host.calls.find((c) => c.startsWith('export '))!.split(' ')[1]!;
  assert.ok(host.calls.includes(`delete-snapshot ${tmp}`), 'the snapshot behind an archive is dropped');
  const a2 = await call('POST', `/workspace/${id}/archives`, { version: 'release-1', vm_paths: ['/srv/app'], exclude_vm_paths: ['/srv/app/tmp'] });
  assert.deepEqual([a2.json.version, a2.json.paths, a2.json.exclude_paths], ['release-1', ['/srv/app'], ['/srv/app/tmp']]);
  assert.ok(host.calls.some((c) => c.endsWith(`${id}/release-1 srv/app|srv/app/tmp`)));
  assert.equal((await call('POST', `/workspace/${id}/archives`, { version: 'release-1' })).json.code, 'conflict');
  assert.equal((await call('POST', `/workspace/${id}/archives`, {})).json.version, 'v2');
  assert.deepEqual((await call('GET', `/workspace/${id}/archives`)).json.archives.map((a: any) => a.version).sort(), ['release-1', 'v1', 'v2']);
  assert.equal((await call('GET', `/workspace/${id}/archives/release-1`)).json.version, 'release-1', 'ArchiveInfo fields top-level');
  assert.equal((await call('GET', `/workspace/${id}/archives/nope`)).status, 404);

  await call('DELETE', `/workspace/${id}/archives/v1`);
  assert.ok(host.archiveFiles.has(`/fake/archives/${id}/v1.tar.gz`), 'without delete_file the file stays');
  await call('DELETE', `/workspace/${id}/archives/v2?delete_file=true`);
  assert.ok(!host.archiveFiles.has(`/fake/archives/${id}/v2.tar.gz`));
  const all = await call('DELETE', `/workspace/${id}/archives?delete_files=true`);
  assert.deepEqual(all.json.deleted, ['release-1']);
  assert.deepEqual((await call('GET', `/workspace/${id}/archives`)).json.archives, []);
});

test('the create body: after defaults to resume; label, name and junk', () => {
  assert.deepEqual(parseSnapshotRequest({}), { after: 'resume', label: null });
  assert.deepEqual(parseSnapshotRequest({ after: 'paused', name: 'n' }), { after: 'paused', label: 'n' });
  assert.throws(() => parseSnapshotRequest({ after: 'stopped' }), /after must be one of resume, paused, stop/);
  assert.throws(() => parseSnapshotRequest({ label: 5 }), /label/);
});

test('image: "snapshot:<id>" of another key is not an image for it: the same answer as a snapshot that does not exist, and nothing is created', async () => {
  const id = await workspace();
  const snap = (await call('POST', `/workspace/${id}/snapshot`, {})).json.snapshot;
  const before = (await call('GET', '/workspace', undefined, other)).json;
  const stolen = await call('POST', '/workspace', { image: `snapshot:${snap.id}`, config: {} }, other);
  const missing = await call('POST', '/workspace', { image: 'snapshot:snap_missing000000000000', config: {} }, other);
  assert.equal(stolen.status, 400);
  assert.equal(stolen.json.code, 'validation_error');
  assert.equal(stolen.json.message, (missing.json.message as string).replaceAll('snap_missing000000000000', snap.id), 'indistinguishable from a missing snapshot');
  assert.deepEqual((await call('GET', '/workspace', undefined, other)).json, before, 'no workspace was created');
  assert.equal((await call('POST', '/workspace', { image: `snapshot:${snap.id}`, config: {} })).status, 201, 'its owner still can');
});
