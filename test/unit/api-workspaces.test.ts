import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { Db } from '../../src/store/db.ts';
import { openTestStore } from '../helpers/store.ts';
import { TokenSigner } from '../../src/auth/jwt.ts';
import { SnapshotService } from '../../src/control/snapshots.ts';
import { ApiKeys, createApiKey } from '../../src/auth/keys.ts';
import { WorkspaceService, DEFAULT_SERVICE_OPTIONS } from '../../src/control/workspaces/index.ts';
import { buildApi, type ApiApp } from '../../src/api/server.ts';
import { agentClientFor } from '../../src/control/workloads.ts';
import { defaultPublicServices } from '../../src/control/public-services.ts';
import { ERROR_STATUS } from '../../src/api/errors.ts';
import { FakeHost } from './fake-host.ts';
import { NamespaceService } from '../../src/control/namespaces.ts';
import { UsageReports } from '../../src/control/usage.ts';

let db: Db;
let api: ApiApp;
let host: FakeHost;
let service: WorkspaceService;
let auth: Record<string, string>;

before(async () => {
  db = await openTestStore();
  host = new FakeHost();
  const log = pino({ level: process.env.LOG_LEVEL ?? 'silent' });
  const namespaces = new NamespaceService(db, log, () => service);
  service = new WorkspaceService(db, host, log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 2000 }, { admission: namespaces });
  const signer = new TokenSigner('test-secret');
  api = buildApi({ workspaces: service, namespaces, usage: new UsageReports(db), meter: null, agent: agentClientFor(host), publicServices: defaultPublicServices({ db, workspaces: service, log }), signer, keys: new ApiKeys(db, signer), snapshots: new SnapshotService(db, host, service, log), log, runtimeUrl: () => 'http://gw' });
  const key = await createApiKey(db, { name: 'admin', admin: true });
  auth = { 'x-client-id': key.clientId, 'x-client-secret': key.clientSecret };
});
after(async () => { await api.app.close(); await db.destroy(); });

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = auth) {
  const res = await api.app.inject({
    method: method as 'GET', url, headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const json = res.json() as Record<string, unknown>;
  // Contract check on every call (§1.4, §2.1).
  if (res.statusCode >= 400) {
    assert.equal(json.success, false, `${method} ${url}: error body must carry success:false`);
    assert.equal(typeof json.code, 'string');
    assert.equal(typeof json.message, 'string');
    assert.equal(ERROR_STATUS[json.code as keyof typeof ERROR_STATUS], res.statusCode, `status of ${json.code}`);
  } else {
    assert.equal(json.success, true, `${method} ${url}: success body must carry success:true`);
  }
  return { status: res.statusCode, json };
}

test('create answers ready:true with internal_ip when the host is fast', async () => {
  const { status, json } = await call('POST', '/workspace', { image: 'node-20', config: { cpus: 2, memory_mb: 4096 }, wait_ready: false });
  assert.equal(status, 201);
  const ws = json.workspace as Record<string, any>;
  assert.match(ws.id, /^ws_[a-z0-9]{12}$/);
  assert.equal(ws.ready, true);
  assert.equal(ws.info.is_running, true);
  assert.match(ws.info.internal_ip, /^10\.99\.0\.\d+$/);
  assert.equal(ws.provisioning.state, 'ready');
  assert.deepEqual(ws.resources, { cpus: 2, memory_mb: 4096, disk_size_mb: 4096 });
  const got = await call('GET', `/workspace/${ws.id}`);
  assert.equal((got.json.workspace as any).config.cpus, 2);
});

test('slow creations answer provisioning and become ready later', async () => {
  host.startDelayMs = 300;
  const svc = new WorkspaceService(db, host, pino({ level: 'silent' }), { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 10 });
  const { adminPrincipal: p } = await import('../../src/control/workspaces/index.ts');
  const { parseCreateRequest } = await import('../../src/core/workspace-spec.ts');
  const ws = await svc.create(p, parseCreateRequest({ image: 'debian-12' }));
  assert.equal(ws.state, 'provisioning');
  await svc.settled(ws.id);
  assert.equal((await svc.byId(ws.id))!.state, 'running');
  host.startDelayMs = 0;
  await svc.delete(p, ws.id);
});

test('a failed start is recorded as data and the SDK sees provisioning.state failed', async () => {
  host.failNextStart = 'qemu exploded';
  const { json } = await call('POST', '/workspace', { image: 'debian-12' });
  const ws = json.workspace as Record<string, any>;
  assert.equal(ws.ready, false);
  assert.equal(ws.provisioning.state, 'failed');
  assert.equal(ws.provisioning.error.code, 'CREATE_FAILED');
  assert.match(ws.provisioning.error.message, /qemu exploded/);
  assert.ok(host.calls.includes(`stop ${ws.id}`), 'the failed sandbox is cleaned up');
  await call('DELETE', `/workspace/${ws.id}`);
});

test('bad input gets the contract status and code, and creates nothing', async () => {
  const before = (await call('GET', '/workspace?limit=500')).json.total;
  const cases: [unknown, number, string][] = [
    [{ image: 'no-such-image' }, 400, 'validation_error'],
    [{ image: 'node-20', config: { ttl: 'soon' } }, 400, 'validation_error'],
    [{ image: 'node-20', config: { cpus: -2 } }, 400, 'validation_error'],
    ['{not json', 400, 'bad_request'],
  ];
  for (const [body, status, code] of cases) {
    const r = await call('POST', '/workspace', body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.equal(r.json.code, code);
  }
  assert.equal((await call('GET', '/workspace?limit=500')).json.total, before);
});

test('credentials: missing → 401 missing_credentials, wrong → 401 invalid_credentials', async () => {
  const missing = await call('GET', '/workspace', undefined, {});
  assert.equal(missing.status, 401);
  assert.equal(missing.json.code, 'missing_credentials');
  const wrong = await call('GET', '/workspace', undefined, { 'x-client-id': auth['x-client-id']!, 'x-client-secret': 'nope' });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.json.code, 'invalid_credentials');
  const badBearer = await call('GET', '/workspace', undefined, { authorization: 'Bearer abc.def.ghi' });
  assert.equal(badBearer.status, 401);
});

test('unknown workspace id → 404 not_found; unknown route → 404', async () => {
  for (const [m, u] of [['GET', '/workspace/ws_nope'], ['DELETE', '/workspace/ws_nope'], ['POST', '/workspace/ws_nope/stop'], ['GET', '/nowhere']] as const) {
    const r = await call(m, u);
    assert.equal(r.status, 404, `${m} ${u}`);
    assert.equal(r.json.code, 'not_found');
  }
});

test('empty JSON bodies on bodyless POSTs are accepted; power cycle works', async () => {
  const { json } = await call('POST', '/workspace', { image: 'debian-12', name: 'Power Cycle' });
  const id = (json.workspace as any).id;
  assert.equal((json.workspace as any).slug, 'power-cycle');
  const stopped = await api.app.inject({ method: 'POST', url: `/workspace/${id}/stop`, headers: { ...auth, 'content-type': 'application/json' }, payload: '' });
  assert.equal(stopped.statusCode, 200);
  assert.equal(stopped.json().workspace.status, 'stopped');
  const started = await call('POST', `/workspace/power-cycle/start`, '');
  assert.equal((started.json.workspace as any).status, 'running');
  const paused = await call('POST', `/workspace/${id}/pause`);
  assert.equal((paused.json.workspace as any).status, 'paused');
  const conflict = await call('POST', `/workspace/${id}/pause`);
  assert.equal(conflict.status, 200, 'pause is idempotent');
  await call('POST', `/workspace/${id}/resume`);
  await call('DELETE', `/workspace/${id}`);
  assert.equal((await call('GET', `/workspace/${id}`)).status, 404);
  assert.ok(host.calls.includes(`destroy ${id}`));
});

test('idempotency key returns the same workspace', async () => {
  const a = await call('POST', '/workspace', { image: 'debian-12', idempotency_key: 'k-1' });
  const b = await call('POST', '/workspace', { image: 'debian-12', idempotency_key: 'k-1' });
  assert.equal((a.json.workspace as any).id, (b.json.workspace as any).id);
  await call('DELETE', `/workspace/${(a.json.workspace as any).id}`);
});

test('runtime access: enable, token, rotate revokes generation, disable', async () => {
  const { json } = await call('POST', '/workspace', { image: 'debian-12' });
  const id = (json.workspace as any).id;
  assert.equal((await call('GET', `/workspace/${id}/runtime-api-access`)).json.enabled, false);
  const denied = await call('GET', `/workspace/${id}/runtime-api-access/token`);
  assert.equal(denied.status, 403);
  const en = await call('POST', `/workspace/${id}/runtime-api-access/enable`);
  assert.equal(en.json.enabled, true);
  assert.ok(typeof en.json.token === 'string' && (en.json.token as string).length > 20);
  const signer = new TokenSigner('test-secret');
  const c1 = await signer.verify(en.json.token as string);
  assert.equal(c1?.kind, 'runtime');
  assert.equal((c1 as any).ws, id);
  const rot = await call('POST', `/workspace/${id}/runtime-api-access/token`);
  const c2 = await signer.verify(rot.json.token as string);
  assert.equal((c2 as any).gen, (c1 as any).gen + 1);
  const raw = await call('GET', `/workspace/${id}/runtime-api-access/token/raw`);
  assert.equal(raw.json.port, 9990);
  assert.match(raw.json.ip as string, /^10\.99\./);
  await call('DELETE', `/workspace/${id}`);
});

test('images, quota and estimate answer in the contract shapes', async () => {
  const img = await call('GET', '/workspace/images');
  assert.ok(Array.isArray(img.json.images));
  assert.ok((img.json.categories as any[]).every((c) => typeof c.id === 'string' && typeof c.label === 'string'));
  const q = await call('GET', '/workspace/quota');
  assert.equal(typeof q.json.max_workspaces, 'number');
  assert.equal(typeof q.json.can_create, 'boolean');
  const e = await call('GET', '/workspace/estimate?cpu=2&ram_mb=2048&disk_mb=10240');
  assert.equal(e.json.hourly, 2 * 1 + 2 * 0.5 + 10 * 0.01);
});

test('scoped bearer token sees only its workspace', async () => {
  const a = (await call('POST', '/workspace', { image: 'debian-12' })).json.workspace as any;
  const b = (await call('POST', '/workspace', { image: 'debian-12' })).json.workspace as any;
  const tok = await call('POST', '/tokens', { scope: 'workspace', workspaceId: a.id, ttl: 60 });
  const bearer = { authorization: `Bearer ${tok.json.token}` };
  assert.equal((await call('GET', `/workspace/${a.id}`, undefined, bearer)).status, 200);
  assert.equal((await call('GET', `/workspace/${b.id}`, undefined, bearer)).status, 404);
  assert.equal((await call('POST', '/workspace', { image: 'debian-12' }, bearer)).status, 403);
  const list = await call('GET', '/workspace', undefined, bearer);
  assert.deepEqual((list.json.workspaces as any[]).map((w) => w.id), [a.id]);
  const badTtl = await call('POST', '/tokens', { scope: 'workspace', workspaceId: a.id, ttl: 99999 });
  assert.equal(badTtl.status, 400);
  await call('DELETE', `/workspace/${a.id}`);
  await call('DELETE', `/workspace/${b.id}`);
});

test('TTL reaper removes expired remove_on_exit workspaces and stops others', async () => {
  const gone = (await call('POST', '/workspace', { image: 'debian-12', config: { ttl: '1s', remove_on_exit: true } })).json.workspace as any;
  const stays = (await call('POST', '/workspace', { image: 'debian-12', config: { ttl: '1s' } })).json.workspace as any;
  assert.equal(gone.mode, 'temporary');
  await new Promise((r) => setTimeout(r, 1100));
  const handled = await service.reapExpired();
  assert.equal(handled, 2, JSON.stringify(await db.selectFrom("workspaces").select(["id","state","ttl_expires_at"]).execute()));
  assert.equal((await call('GET', `/workspace/${gone.id}`)).status, 404);
  assert.equal(((await call('GET', `/workspace/${stays.id}`)).json.workspace as any).status, 'stopped');
  await call('DELETE', `/workspace/${stays.id}`);
});

test('disk_size_mb grows through PUT (the host grows the disk) and never shrinks', async () => {
  const { json } = await call('POST', '/workspace', { image: 'node-20', config: { disk_size_mb: 1024 }, wait_ready: false });
  const id = (json.workspace as Record<string, any>).id as string;
  host.calls.length = 0;
  const grown = await call('PUT', `/workspace/${id}`, { config: { disk_size_mb: 2048 } });
  assert.equal(grown.status, 200);
  assert.deepEqual(host.calls.filter((c) => c.startsWith('resize-disk')), [`resize-disk ${id} 2048`]);
  const shrink = await call('PUT', `/workspace/${id}`, { config: { disk_size_mb: 512 } });
  assert.equal(shrink.status, 400);
  assert.equal(shrink.json.code, 'validation_error');
  assert.match(String(shrink.json.message), /cannot shrink/);
  assert.equal(((await call('GET', `/workspace/${id}`)).json.workspace as any).config.disk_size_mb, 2048);
  host.calls.length = 0;
  await call('PUT', `/workspace/${id}`, { config: { cpus: 2 } });
  assert.deepEqual(host.calls.filter((c) => c.startsWith('resize-disk')), [], 'no resize without a disk change');
});
