/**
 * A namespace deleted and created again under the same slug is a new tenant
 * (the isolation issue, item 12): the old namespace's keys are revoked, its
 * scoped tokens stop working, its usage does not follow the slug, and a
 * namespace token asked for by id is bound to the slug it names.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { openSqlite, type Db } from '../../src/store/db.ts';
import { TokenSigner } from '../../src/auth/jwt.ts';
import { SnapshotService } from '../../src/control/snapshots.ts';
import { ApiKeys, createApiKey } from '../../src/auth/keys.ts';
import { WorkspaceService, DEFAULT_SERVICE_OPTIONS } from '../../src/control/workspaces/index.ts';
import { NamespaceService } from '../../src/control/namespaces.ts';
import { UsageReports } from '../../src/control/usage.ts';
import { buildApi, type ApiApp } from '../../src/api/server.ts';
import { agentClientFor } from '../../src/control/workloads.ts';
import { defaultPublicServices } from '../../src/control/public-services.ts';
import { FakeHost } from './fake-host.ts';

let db: Db;
let api: ApiApp;
let admin: Record<string, string>;

before(async () => {
  db = await openSqlite(':memory:');
  const host = new FakeHost();
  const log = pino({ level: 'silent' });
  const namespaces = new NamespaceService(db, log, () => workspaces);
  const workspaces: WorkspaceService = new WorkspaceService(db, host, log, DEFAULT_SERVICE_OPTIONS, { admission: namespaces });
  const signer = new TokenSigner('namespace-reuse-test');
  api = buildApi({ workspaces, namespaces, usage: new UsageReports(db), meter: null, agent: agentClientFor(host), publicServices: defaultPublicServices({ db, workspaces, log }), signer, keys: new ApiKeys(db, signer), snapshots: new SnapshotService(db, host, workspaces, log), log, runtimeUrl: () => null });
  const key = await createApiKey(db, { name: 'admin', admin: true });
  admin = { 'x-client-id': key.clientId, 'x-client-secret': key.clientSecret };
});
after(async () => { await api.app.close(); await db.destroy(); });

async function call(method: 'GET' | 'POST' | 'DELETE', url: string, headers: Record<string, string>, body?: unknown) {
  const res = await api.app.inject({ method, url, headers: { 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
  return { status: res.statusCode, json: res.json() as Record<string, any> };
}
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const claims = (t: string) => JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as { namespace: string };

test('deleting a namespace revokes its keys and tokens; the slug created again starts clean', async () => {
  const ns = (await call('POST', '/namespaces', admin, { name: 'Acme', slug: 'acme' })).json.data as { id: string; slug: string };
  const made = (await call('POST', '/keys', admin, { name: 'acme key', namespace: 'acme' })).json;
  const key = { 'x-client-id': made.clientId as string, 'x-client-secret': made.clientSecret as string };
  const token = (await call('POST', '/tokens', admin, { scope: 'namespace', namespace: ns.id, ttl: 600 })).json.token as string;
  assert.equal(claims(token).namespace, 'acme', 'a namespace token asked for by id is bound to its slug');
  const ws = await call('POST', '/workspace', key, { image: 'debian-12', config: { ttl: '10m' } });
  assert.equal(ws.status, 201, JSON.stringify(ws.json));
  assert.equal((await call('GET', '/workspace', bearer(token))).json.workspaces?.length ?? (await call('GET', '/workspace', bearer(token))).json.data?.length, 1, 'the token sees the namespace');
  await db.insertInto('usage_buckets').values({
    workspace_id: ws.json.workspace.id, namespace: 'acme', bucket: new Date().toISOString().slice(0, 13), seconds: 3600, vcpu_seconds: 3600, memory_mb_seconds: 1, disk_mb_seconds: 1,
    cpu_used_seconds: 0, egress_bytes: 0, credits: 5, records: 1,
  } as never).execute();

  assert.equal((await call('DELETE', `/namespaces/${ns.id}`, admin, { deleteWorkspaces: true })).status, 200);
  assert.equal((await call('GET', '/workspace', key)).status, 401, 'the namespace key is revoked');
  assert.equal((await call('POST', '/namespaces', admin, { name: 'Acme again', slug: 'acme' })).status, 201);
  assert.equal((await call('GET', '/workspace', key)).status, 401, 'the old key does not come back with the slug');
  const reused = await call('GET', '/workspace', bearer(token));
  assert.equal(reused.status, 401, `the old namespace token does not reach the new namespace: ${JSON.stringify(reused.json)}`);
  const fresh = (await call('POST', '/tokens', admin, { scope: 'namespace', namespace: 'acme', ttl: 600 })).json.token as string;
  assert.equal((await call('GET', '/workspace', bearer(fresh))).status, 200, 'a token minted for the new namespace works');
  const usage = (await call('GET', '/namespaces/acme/usage', admin)).json.data as { services: { workspace_vm: { credits?: number; seconds?: number } } };
  assert.ok(!usage.services.workspace_vm.credits && !usage.services.workspace_vm.seconds, `no usage follows the slug: ${JSON.stringify(usage.services)}`);
  const kept = await db.selectFrom('usage_buckets').select('namespace').where('workspace_id', '=', ws.json.workspace.id).execute();
  assert.match(kept[0]!.namespace!, /^acme~deleted~/, 'the old usage is kept for the operator under the deleted namespace');
});
