/** The pure part of domain ownership proofs: token, record name and value, matching, coverage and status transitions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CHALLENGE_PREFIX, challengeHost, challengeValue, covers, domainStatus, nextClaimStatus, requiredTxt, tokenFromBytes, txtProves,
} from '../../src/control/domain-proof.ts';

test('tokens: lowercase base32, 5 bits a character, distinct for distinct bytes, refuse short input', () => {
  const t = tokenFromBytes(new Uint8Array(20).fill(0));
  assert.equal(t, 'a'.repeat(32));
  assert.equal(tokenFromBytes(new Uint8Array(20).fill(255)), '7'.repeat(32));
  const a = tokenFromBytes(Uint8Array.from({ length: 20 }, (_, i) => i));
  const b = tokenFromBytes(Uint8Array.from({ length: 20 }, (_, i) => i + 1));
  assert.match(a, /^[a-z2-7]{32}$/);
  assert.notEqual(a, b);
  assert.throws(() => tokenFromBytes(new Uint8Array(8)), /16 random bytes/);
});

test('the record to create: _hearth-challenge.<domain> TXT hearth-verify=<token>', () => {
  assert.equal(challengeHost('shop.example.org'), '_hearth-challenge.shop.example.org');
  assert.equal(challengeValue('abc'), `${CHALLENGE_PREFIX}abc`);
  const r = requiredTxt('shop.example.org', 'abc');
  assert.deepEqual([r.type, r.host, r.value], ['TXT', '_hearth-challenge.shop.example.org', 'hearth-verify=abc']);
  assert.match(r.note, /pending/);
});

test('a TXT answer proves a token only with the exact value (quotes and spaces forgiven)', () => {
  assert.equal(txtProves(['hearth-verify=abc'], 'abc'), true);
  assert.equal(txtProves(['v=spf1 -all', ' "hearth-verify=abc" '], 'abc'), true);
  assert.equal(txtProves([], 'abc'), false);
  assert.equal(txtProves(['hearth-verify=abcd'], 'abc'), false);
  assert.equal(txtProves(['hearth-verify=ab'], 'abc'), false);
  assert.equal(txtProves(['abc'], 'abc'), false, 'the bare token is not the record');
  assert.equal(txtProves(['hearth-verify=ABC'], 'abc'), false);
});

test('a proof covers the domain and the names under it, nothing else', () => {
  assert.equal(covers('example.org', 'example.org'), true);
  assert.equal(covers('example.org', 'www.example.org'), true);
  assert.equal(covers('example.org', 'a.b.example.org'), true);
  assert.equal(covers('example.org', 'badexample.org'), false);
  assert.equal(covers('shop.example.org', 'example.org'), false);
});

test('status transitions: pending until found, proven stays proven while used; active only when routed here', () => {
  assert.equal(nextClaimStatus('pending', { found: false }), 'pending');
  assert.equal(nextClaimStatus('pending', { found: true }), 'verified');
  assert.equal(nextClaimStatus('verified', { found: false }), 'verified');
  assert.equal(nextClaimStatus('verified', { found: true }), 'verified');
  assert.equal(nextClaimStatus('verified', { found: false, inUse: true }), 'verified');
  assert.equal(nextClaimStatus('verified', { found: true, inUse: false }), 'pending', 'an unused proof goes stale');
  assert.equal(nextClaimStatus('pending', { found: true, inUse: false }), 'pending');
  assert.equal(domainStatus('pending', false), 'pending');
  assert.equal(domainStatus('pending', true), 'pending');
  assert.equal(domainStatus('verified', false), 'verified');
  assert.equal(domainStatus('verified', true), 'active');
});
