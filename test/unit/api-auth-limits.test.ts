/**
 * Failed API-key authentication is paced per client address (the isolation
 * issue's attempt limits): past its budget an address is refused with 429
 * before any key is looked up — even with the right secret — while another
 * address and the refused one, once its budget refills, still get in.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { openSqlite, type Db } from '../../src/store/db.ts';
import { TokenSigner } from '../../src/auth/jwt.ts';
import { SnapshotService } from '../../src/control/snapshots.ts';
import { ApiKeys, createApiKey, DEFAULT_AUTH_FAILURE_LIMITS } from '../../src/auth/keys.ts';
import { WorkspaceService, DEFAULT_SERVICE_OPTIONS } from '../../src/control/workspaces/index.ts';
import { NamespaceService } from '../../src/control/namespaces.ts';
import { UsageReports } from '../../src/control/usage.ts';
import { buildApi, type ApiApp } from '../../src/api/server.ts';
import { RateLimited } from '../../src/core/errors.ts';
import { agentClientFor } from '../../src/control/workloads.ts';
import { defaultPublicServices } from '../../src/control/public-services.ts';
import { FakeHost } from './fake-host.ts';

let db: Db;
let api: ApiApp;
let good: Record<string, string>;

before(async () => {
  db = await openSqlite(':memory:');
  const host = new FakeHost();
  const log = pino({ level: 'silent' });
  const namespaces = new NamespaceService(db, log, () => workspaces);
  const workspaces: WorkspaceService = new WorkspaceService(db, host, log, DEFAULT_SERVICE_OPTIONS, { admission: namespaces });
  const signer = new TokenSigner('auth-limits-test');
  api = buildApi({ workspaces, namespaces, usage: new UsageReports(db), meter: null, agent: agentClientFor(host), publicServices: defaultPublicServices({ db, workspaces, log }), signer, keys: new ApiKeys(db, signer), snapshots: new SnapshotService(db, host, workspaces, log), log, runtimeUrl: () => null });
  const key = await createApiKey(db, { name: 'admin', admin: true });
  good = { 'x-client-id': key.clientId, 'x-client-secret': key.clientSecret };
});
after(async () => { await api.app.close(); await db.destroy(); });

const from = (remoteAddress: string, headers: Record<string, string>) => api.app.inject({ method: 'GET', url: '/workspace', remoteAddress, headers });

test('an address that sent too many bad secrets is refused with 429 and Retry-After, even with the right one; others are not', async () => {
  const attacker = '198.51.100.7';
  for (let i = 0; i < DEFAULT_AUTH_FAILURE_LIMITS.burst; i++) {
    const r = await from(attacker, { 'x-client-id': good['x-client-id']!, 'x-client-secret': `hs_guess${i}` });
    assert.equal(r.statusCode, 401, `guess ${i} is checked and refused`);
  }
  const paused = await from(attacker, good);
  assert.equal(paused.statusCode, 429);
  assert.equal(paused.json().code, 'rate_limited');
  assert.equal(paused.json().success, false);
  assert.ok(Number(paused.headers['retry-after']) >= 1, `retry-after ${paused.headers['retry-after']}`);
  assert.equal((await from(attacker, { authorization: 'Bearer forged.token.here' })).statusCode, 429, 'forged tokens are paced too');
  assert.equal((await from('198.51.100.8', good)).statusCode, 200, 'another address is untouched');
  assert.equal((await from('198.51.100.9', {})).statusCode, 401, 'missing credentials answer 401');
});

test('missing credentials spend nothing; the budget refills with time', async () => {
  const signer = new TokenSigner('refill');
  const keys = new ApiKeys(db, signer, { burst: 2, perSecond: 20 });
  for (let i = 0; i < 10; i++) await assert.rejects(keys.authenticate({}, 'a'), (e: Error) => e.name === 'Unauthenticated');
  await keys.authenticate(good, 'a');
  for (let i = 0; i < 2; i++) await assert.rejects(keys.authenticate({ ...good, 'x-client-secret': 'no' }, 'a'), (e: Error) => e.name === 'Unauthenticated');
  await assert.rejects(keys.authenticate(good, 'a'), RateLimited);
  await new Promise((r) => setTimeout(r, 120));
  const p = await keys.authenticate(good, 'a');
  assert.equal(p.clientId, good['x-client-id']);
});
