/**
 * A namespace deleted and created again under the same slug is a new tenant
 * (the isolation issue, item 12): the old namespace's keys are revoked, its
 * scoped tokens stop working, its usage does not follow the slug, and a
 * namespace token asked for by id is bound to the slug it names.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startApi, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
let db: ApiHarness['db'];
let admin: Record<string, string>;

before(async () => {
  h = await startApi('namespace-reuse-test');
  ({ db, admin } = h);
});
after(async () => { await h.close(); });

const call = (method: 'GET' | 'POST' | 'DELETE', url: string, headers: Record<string, string>, body?: unknown) => h.call(method, url, headers, body);
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

test('a tenant cannot wipe its own usage (its bill and quota count); the operator can', async () => {
  await call('POST', '/namespaces', admin, { name: 'Billing', slug: 'billed' });
  const made = (await call('POST', '/keys', admin, { name: 'billed key', namespace: 'billed' })).json;
  const key = { 'x-client-id': made.clientId as string, 'x-client-secret': made.clientSecret as string };
  const ws = (await call('POST', '/workspace', key, { image: 'debian-12', config: { ttl: '10m' } })).json.workspace as { id: string };
  await db.insertInto('usage_buckets').values({
    workspace_id: ws.id, namespace: 'billed', bucket: new Date().toISOString().slice(0, 13), seconds: 60, vcpu_seconds: 60, memory_mb_seconds: 1, disk_mb_seconds: 1,
    cpu_used_seconds: 0, egress_bytes: 0, credits: 2, records: 1,
  } as never).execute();
  const refused = await call('DELETE', `/workspace/${ws.id}/usage`, key);
  assert.equal(refused.status, 403);
  assert.equal(refused.json.code, 'forbidden');
  assert.equal((await db.selectFrom('usage_buckets').select('credits').where('workspace_id', '=', ws.id).execute()).length, 1, 'the record is still there');
  assert.equal((await call('DELETE', `/workspace/${ws.id}/usage`, admin)).json.deleted, 1);
});

test('an idempotency key reused by a token of another namespace answers 409, never the other namespace\'s workspace', async () => {
  await call('POST', '/namespaces', admin, { name: 'Left', slug: 'left' });
  await call('POST', '/namespaces', admin, { name: 'Right', slug: 'right' });
  const tokenFor = async (namespace: string) => (await call('POST', '/tokens', admin, { scope: 'namespace', namespace, ttl: 600 })).json.token as string;
  const left = bearer(await tokenFor('left'));
  const right = bearer(await tokenFor('right'));
  const first = await call('POST', '/workspace', left, { image: 'debian-12', idempotency_key: 'deploy-1', config: { ttl: '10m' } });
  assert.equal(first.status, 201);
  const retry = await call('POST', '/workspace', left, { image: 'debian-12', idempotency_key: 'deploy-1', config: { ttl: '10m' } });
  assert.equal(retry.json.workspace.id, first.json.workspace.id, 'a retry in the same namespace gets the same workspace');
  const other = await call('POST', '/workspace', right, { image: 'debian-12', idempotency_key: 'deploy-1', config: { ttl: '10m' } });
  assert.equal(other.status, 409, JSON.stringify(other.json));
  assert.ok(!JSON.stringify(other.json).includes(first.json.workspace.id), 'nothing of the other namespace\'s workspace comes back');
});
