/**
 * API keys and scoped-token revocation through the control plane (Hearth
 * extensions, §24): what an admin can create, list and revoke, and that a
 * revoked credential stops authenticating at once.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openTestStore } from '../helpers/store.ts';
import { TokenSigner } from '../../src/auth/jwt.ts';
import { ApiKeys } from '../../src/auth/keys.ts';
import { startApi, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
let admin: Record<string, string>;

before(async () => {
  h = await startApi('keys-test');
  admin = h.admin;
});
after(async () => { await h.close(); });

const call = (method: 'GET' | 'POST' | 'DELETE', url: string, headers: Record<string, string>, body?: unknown) => h.call(method, url, headers, body);

test('keys: create shows the secret once, list never does, revoke stops the key at once', async () => {
  const made = await call('POST', '/keys', admin, { name: 'ci' });
  assert.equal(made.status, 201);
  const ci = { 'x-client-id': made.json.clientId as string, 'x-client-secret': made.json.clientSecret as string };
  assert.equal((await call('GET', '/workspace', ci)).status, 200, 'the new key authenticates');

  const listed = await call('GET', '/keys', admin);
  const row = (listed.json.keys as Record<string, unknown>[]).find((k) => k.client_id === ci['x-client-id']);
  assert.deepEqual({ name: row?.name, is_admin: row?.is_admin, revoked_at: row?.revoked_at }, { name: 'ci', is_admin: false, revoked_at: null });
  assert.ok(!JSON.stringify(listed.json).includes(ci['x-client-secret']), 'no secret in the list');
  assert.ok(!JSON.stringify(listed.json).includes('secret_hash'), 'no hash in the list');

  assert.equal((await call('DELETE', `/keys/${ci['x-client-id']}`, admin)).status, 200);
  assert.equal((await call('GET', '/workspace', ci)).status, 401, 'a revoked key is refused');
  assert.equal((await call('DELETE', `/keys/${ci['x-client-id']}`, admin)).status, 404, 'revoking twice: no live key');
  assert.equal((await call('DELETE', `/keys/${admin['x-client-id']}`, admin)).json.code, 'validation_error', 'a key cannot revoke itself');
  assert.ok((await call('GET', '/keys', admin)).json.keys.find((k: Record<string, unknown>) => k.client_id === ci['x-client-id']).revoked_at, 'the list shows when it was revoked');
});

test('tokens/revoke: a revoked scoped token is refused at once; an invalid one reports revoked:false', async () => {
  const minted = await call('POST', '/tokens', admin, { scope: 'namespace', namespace: 'default', ttl: 600 });
  const bearer = { authorization: `Bearer ${minted.json.token as string}` };
  assert.equal((await call('GET', '/workspace', bearer)).status, 200, 'the token authenticates');
  assert.deepEqual((await call('POST', '/tokens/revoke', admin, { token: minted.json.token })).json, { success: true, revoked: true });
  assert.equal((await call('GET', '/workspace', bearer)).status, 401, 'revoked');
  assert.equal((await call('POST', '/tokens/revoke', admin, { token: 'garbage' })).json.revoked, false);
});

test('ensureAdmin: the first start makes one admin key, later starts none, and a revoked admin key is replaced', async () => {
  const store = await openTestStore();
  try {
    const keys = new ApiKeys(store, new TokenSigner('ensure-admin'));
    const first = await keys.ensureAdmin();
    assert.ok(first);
    assert.equal(await keys.ensureAdmin(), null);
    const admins = (await keys.list()).filter((k) => k.is_admin);
    assert.deepEqual(admins.map((k) => k.client_id), [first.clientId]);
    assert.equal(await keys.revoke(first.clientId), true);
    const second = await keys.ensureAdmin();
    assert.ok(second);
    assert.notEqual(second.clientId, first.clientId);
  } finally {
    await store.destroy();
  }
});
