/**
 * Failed API-key authentication is paced per client address (the isolation
 * issue's attempt limits): past its budget an address is refused with 429
 * before any key is looked up — even with the right secret — while another
 * address and the refused one, once its budget refills, still get in.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ApiKeys, DEFAULT_AUTH_FAILURE_LIMITS } from '../../src/auth/keys.ts';
import { TokenSigner } from '../../src/auth/jwt.ts';
import { RateLimited } from '../../src/core/errors.ts';
import { startApi, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
let good: Record<string, string>;

before(async () => {
  h = await startApi('auth-limits-test');
  good = h.admin;
});
after(async () => { await h.close(); });

const from = (remoteAddress: string, headers: Record<string, string>) => h.api.app.inject({ method: 'GET', url: '/workspace', remoteAddress, headers });

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
  const keys = new ApiKeys(h.db, signer, { burst: 2, perSecond: 20 });
  for (let i = 0; i < 10; i++) await assert.rejects(keys.authenticate({}, 'a'), (e: Error) => e.name === 'Unauthenticated');
  await keys.authenticate(good, 'a');
  for (let i = 0; i < 2; i++) await assert.rejects(keys.authenticate({ ...good, 'x-client-secret': 'no' }, 'a'), (e: Error) => e.name === 'Unauthenticated');
  await assert.rejects(keys.authenticate(good, 'a'), RateLimited);
  await new Promise((r) => setTimeout(r, 120));
  const p = await keys.authenticate(good, 'a');
  assert.equal(p.clientId, good['x-client-id']);
});
