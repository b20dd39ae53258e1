/**
 * The network sub-resource (§7) in process (fastify inject, fake host):
 * the view, live PATCH, and the outbound IP path. What the kernel does with
 * it is test/integration/firewall-matrix.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { openSqlite, type Db } from '../../src/store/db.ts';
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

before(async () => {
  db = await openSqlite(':memory:');
  host = new FakeHost();
  const log = pino({ level: 'silent' });
  const namespaces = new NamespaceService(db, log, () => service);
  const service: WorkspaceService = new WorkspaceService(db, host, log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 2000 }, { admission: namespaces });
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

test('network view, live PATCH and outbound IP', async () => {
  const created = await call('POST', '/workspace', { image: 'debian-12', config: { allow_internet: false, ingress: ['10.99.0.9'], egress: ['10.99.0.7', 'api.example.com'] } });
  assert.equal(created.status, 201);
  const id = created.json.workspace.id as string;
  const view = await call('GET', `/workspace/${id}/network`);
  assert.equal(view.status, 200);
  assert.deepEqual(
    [view.json.ip, view.json.allow_internet, view.json.ingress, view.json.egress, view.json.outbound_ip, view.json.outbound_mode],
    [created.json.workspace.info.internal_ip, false, ['10.99.0.9'], ['10.99.0.7', 'api.example.com'], null, 'managed'],
  );

  host.calls.length = 0;
  const patched = await call('PATCH', `/workspace/${id}/network`, { ingress: ['10.99.0.0/24'], allow_internet: true, ingress_ports: [3000] });
  assert.equal(patched.status, 200);
  assert.deepEqual([patched.json.ingress, patched.json.allow_internet, patched.json.ingress_ports], [['10.99.0.0/24'], true, [3000]]);
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
