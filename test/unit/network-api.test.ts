/**
 * The network sub-resource (§7) in process (fastify inject, fake host):
 * the view, live PATCH, and the outbound IP path. What the kernel does with
 * it is test/integration/firewall-matrix.test.ts.
 */
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
import { FakeHost } from './fake-host.ts';
import { NamespaceService } from '../../src/control/namespaces.ts';
import { UsageReports } from '../../src/control/usage.ts';

let db: Db;
let api: ApiApp;
let host: FakeHost;
let auth: Record<string, string>;
let service: WorkspaceService;

before(async () => {
  db = await openTestStore();
  host = new FakeHost();
  const log = pino({ level: 'silent' });
  const namespaces = new NamespaceService(db, log, () => service);
  service = new WorkspaceService(db, host, log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 2000 }, { admission: namespaces });
  const signer = new TokenSigner('t');
  api = buildApi({ workspaces: service, namespaces, usage: new UsageReports(db), meter: null, agent: agentClientFor(host), publicServices: defaultPublicServices({ db, workspaces: service, log }), signer, keys: new ApiKeys(db, signer), snapshots: new SnapshotService(db, host, service, log), log, runtimeUrl: () => 'http://gw' });
  const key = await createApiKey(db, { name: 'admin', admin: true });
  auth = { 'x-client-id': key.clientId, 'x-client-secret': key.clientSecret };
});
after(async () => { await api.app.close(); await db.destroy(); });

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = auth) {
  const res = await api.app.inject({ method: method as 'GET', url, headers: { 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
  return { status: res.statusCode, json: res.json() as Record<string, any> };
}

async function createWs(config: Record<string, unknown> = {}): Promise<{ id: string; ip: string }> {
  const r = await call('POST', '/workspace', { image: 'debian-12', config });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return { id: r.json.workspace.id as string, ip: r.json.workspace.info.internal_ip as string };
}

test('network view, live PATCH and outbound IP', async () => {
  const [src, dst] = [await createWs(), await createWs()];
  const created = await call('POST', '/workspace', { image: 'debian-12', config: { allow_internet: false, ingress: [src.ip], egress: [dst.ip, 'api.example.com'] } });
  assert.equal(created.status, 201);
  const id = created.json.workspace.id as string;
  const view = await call('GET', `/workspace/${id}/network`);
  assert.equal(view.status, 200);
  assert.deepEqual(
    [view.json.ip, view.json.allow_internet, view.json.ingress, view.json.egress, view.json.outbound_ip, view.json.outbound_mode],
    [created.json.workspace.info.internal_ip, false, [src.ip], [dst.ip, 'api.example.com'], null, 'managed'],
  );

  host.calls.length = 0;
  const patched = await call('PATCH', `/workspace/${id}/network`, { ingress: ['203.0.113.0/24'], allow_internet: true, ingress_ports: [3000] });
  assert.equal(patched.status, 200);
  assert.deepEqual([patched.json.ingress, patched.json.allow_internet, patched.json.ingress_ports], [['203.0.113.0/24'], true, [3000]]);
  assert.deepEqual(host.calls, [`network ${id}`], 'applied live, once');
  assert.equal((await call('PATCH', `/workspace/${id}/network`, { egress: ['bad host!'] })).status, 400);

  host.calls.length = 0;
  const ip = await call('POST', `/workspace/${id}/network/ip`, { ip: '192.0.2.11' });
  assert.equal(ip.status, 200);
  assert.equal(ip.json.outbound_ip, '192.0.2.11');
  assert.deepEqual(host.calls, [`network ${id}`]);
  assert.equal((await call('GET', `/workspace/${id}/network`)).json.outbound_ip, '192.0.2.11');
  const refused = await call('POST', `/workspace/${id}/network/ip`, { ip: '198.51.100.1' });
  assert.equal(refused.status, 400);
  assert.match(refused.json.message, /not an address of this host/);
  assert.equal((await call('POST', `/workspace/${id}/network/ip`, { ip: 42 })).status, 400);
  const cleared = await call('POST', `/workspace/${id}/network/ip`, { ip: null });
  assert.equal(cleared.json.outbound_ip, null);
  host.defaultOutboundIp = '192.0.2.10';
  assert.equal((await call('GET', `/workspace/${id}/network`)).json.outbound_ip, '192.0.2.10', 'the host default (--outbound-ip) is what is in effect');
});

test('outbound_ip through update and create: only this host\'s addresses, and a dedicated one is held by one tenant', async () => {
  const keyFor = async (namespace: string) => {
    await call('POST', '/namespaces', { name: namespace, slug: namespace });
    const k = await createApiKey(db, { name: namespace, admin: false, namespace });
    return { 'x-client-id': k.clientId, 'x-client-secret': k.clientSecret };
  };
  const a = await keyFor('tenant-a');
  const b = await keyFor('tenant-b');
  const wa = (await call('POST', '/workspace', { image: 'debian-12' }, a)).json.workspace.id as string;
  const wb = (await call('POST', '/workspace', { image: 'debian-12' }, b)).json.workspace.id as string;

  // The attack: PUT takes any address (SNAT to an address the host does not own).
  const foreign = await call('PUT', `/workspace/${wa}`, { config: { outbound_ip: '203.0.113.77' } }, a);
  assert.equal(foreign.status, 400, JSON.stringify(foreign.json));
  assert.notEqual((await call('GET', `/workspace/${wa}/network`, undefined, a)).json.outbound_ip, '203.0.113.77', 'nothing was saved');
  assert.equal((await call('POST', '/workspace', { image: 'debian-12', config: { outbound_ip: '203.0.113.77' } }, a)).status, 400, 'nor on create');

  assert.equal((await call('PUT', `/workspace/${wa}`, { config: { outbound_ip: '192.0.2.11' } }, a)).status, 200);
  const stolen = await call('PUT', `/workspace/${wb}`, { config: { outbound_ip: '192.0.2.11' } }, b);
  assert.equal(stolen.status, 400);
  assert.match(stolen.json.message, /dedicated to another tenant/);
  assert.equal((await call('POST', `/workspace/${wb}/network/ip`, { ip: '192.0.2.11' }, b)).status, 400, 'nor through network/ip');
  assert.equal((await call('POST', '/workspace', { image: 'debian-12', config: { outbound_ip: '192.0.2.11' } }, b)).status, 400, 'nor on create');
  assert.equal((await call('POST', '/workspace', { image: 'debian-12', config: { outbound_ip: '192.0.2.11' } }, a)).status, 201, 'the tenant holding it may use it on more workspaces');
  host.defaultOutboundIp = '192.0.2.10';
  assert.equal((await call('PUT', `/workspace/${wb}`, { config: { outbound_ip: '192.0.2.10' } }, b)).status, 200, 'the host default is every tenant\'s');
});

test('addresses on the workspace network name live workspaces: no free address, no range, and a delete removes the name everywhere', async () => {
  const [w1, w2, other] = [await createWs(), await createWs(), await createWs()];
  const free = '10.99.0.60';
  for (const [field, entry, why] of [['ingress', free, 'no workspace holds it'], ['egress', free, 'no workspace holds it'], ['ingress', '10.99.0.0/24', 'a range'], ['egress', '10.99.0.0/28', 'a range']] as const) {
    const r = await call('PATCH', `/workspace/${w1.id}/network`, { [field]: [entry] });
    assert.equal(r.status, 400, `${field} ${entry}: ${why}`);
    assert.equal(r.json.details?.field, field);
  }
  assert.equal((await call('POST', '/workspace', { image: 'debian-12', config: { ingress: [free] } })).status, 400, 'create refuses it too');

  // W1 trusts W2 (ingress) and calls only W2 (egress); `other` also calls W2 and something outside.
  assert.equal((await call('PATCH', `/workspace/${w1.id}/network`, { ingress: [w2.ip, '203.0.113.7'], egress: [w2.ip] })).status, 200);
  assert.equal((await call('PATCH', `/workspace/${other.id}/network`, { egress: [`${w2.ip}/32`, 'api.example.com'] })).status, 200);
  host.calls.length = 0;
  assert.equal((await call('DELETE', `/workspace/${w2.id}`)).status, 200);
  const n1 = (await call('GET', `/workspace/${w1.id}/network`)).json;
  assert.deepEqual(n1.ingress, ['203.0.113.7'], 'the deleted workspace\'s address left W1\'s ingress');
  assert.deepEqual(n1.egress, ['0.0.0.0'], 'an egress list emptied by a delete reaches nothing, not everything');
  assert.deepEqual((await call('GET', `/workspace/${other.id}/network`)).json.egress, ['api.example.com']);
  assert.ok(host.calls.includes(`network ${w1.id}`) && host.calls.includes(`network ${other.id}`), `their policies were applied again: ${host.calls.join(', ')}`);
  assert.equal((await call('PATCH', `/workspace/${w1.id}/network`, { ingress: [w2.ip] })).status, 400, 'the address names nobody now');

  // The freed slot is not handed out while a list names its address (here: after the rest, named by nobody, it is).
  const next = await createWs();
  assert.notEqual(next.ip, w2.ip, 'a resting slot is not reused');
  for (const w of [w1, other, next]) await call('DELETE', `/workspace/${w.id}`);
});

test('a start racing a delete ends with the store\'s lists: the started sandbox is given them again', async () => {
  const w2 = await createWs();
  const applied: [string, unknown][] = [];
  const origApply = host.applyNetwork.bind(host);
  host.applyNetwork = async (ws) => { applied.push([ws.id, ws.config.ingress]); return origApply(ws); };
  // LocalHost.start loads the policy of the row it was given: model it landing late, after the delete's re-apply.
  const origStart = host.start.bind(host);
  host.start = async (ws) => { await origStart(ws); applied.push([ws.id, ws.config.ingress]); };
  host.startDelayMs = 300;
  try {
    const creating = call('POST', '/workspace', { image: 'debian-12', config: { ingress: [w2.ip] } });
    await new Promise((r) => setTimeout(r, 100)); // W1 is starting with W2 in its ingress
    const w1 = (await db.selectFrom('workspaces').select(['id', 'config']).where('config', 'like', `%${w2.ip}%`).executeTakeFirstOrThrow()).id;
    assert.equal((await call('DELETE', `/workspace/${w2.id}`)).status, 200);
    await creating;
    await service.settled(w1);
    const mine = applied.filter(([id]) => id === w1);
    assert.ok(mine.length > 0, 'W1\'s policy was applied after the delete');
    assert.deepEqual(mine.at(-1)![1], [], 'the last policy W1 got is the store\'s, without the deleted workspace');
    assert.deepEqual((await call('GET', `/workspace/${w1}/network`)).json.ingress, []);
    await call('DELETE', `/workspace/${w1}`);
  } finally {
    host.startDelayMs = 0;
    host.applyNetwork = origApply;
    host.start = origStart;
  }
});

test('boot: names of addresses no workspace holds are forgotten, and until then their slots are not handed out', async () => {
  const [w1, w2] = [await createWs(), await createWs()];
  const free = '10.99.0.50';
  // A store from before names were kept: W1 names W2 and an address nobody holds.
  const cfg = JSON.parse((await db.selectFrom('workspaces').select('config').where('id', '=', w1.id).executeTakeFirstOrThrow()).config);
  await db.updateTable('workspaces').set({ config: JSON.stringify({ ...cfg, ingress: [w2.ip, free], egress: [free] }) }).where('id', '=', w1.id).execute();
  const rows = await db.selectFrom('workspaces').select('slot_index').where('slot_index', 'is not', null).execute();
  const taken = new Set(rows.map((r) => r.slot_index));
  // Fill every free slot below the named one: the next create would get it, but it is named.
  const filler: string[] = [];
  for (let i = 0; i < 48; i++) if (!taken.has(i)) filler.push((await createWs()).id);
  const next = await createWs();
  assert.notEqual(next.ip, free, 'a slot whose address a list names is not handed out');
  filler.push(next.id);
  const summary = await service.reconcile();
  assert.equal(summary.names_forgotten, 1);
  const n1 = (await call('GET', `/workspace/${w1.id}/network`)).json;
  assert.deepEqual([n1.ingress, n1.egress], [[w2.ip], ['0.0.0.0']], 'the live name stays; the dangling ones go (an emptied egress reaches nothing)');
  // No longer named: the slot is handed out again (lower slots resting after earlier deletes may come first).
  let got = false;
  for (let i = 0; i < 20 && !got; i++) {
    const w = await createWs();
    filler.push(w.id);
    got = w.ip === free;
  }
  assert.ok(got, 'the slot is free again');
  for (const id of [...filler, w1.id, w2.id]) await call('DELETE', `/workspace/${id}`);
});
