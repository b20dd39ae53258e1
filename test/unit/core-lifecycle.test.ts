import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALLOWED, STATES, assertTransition, canTransition, InvalidTransition } from '../../src/core/lifecycle.ts';

// Every (from, to) pair is decided explicitly: a new state cannot go untested.
const EXPECTED_ALLOWED = new Set([
  'provisioning>running', 'provisioning>failed', 'provisioning>deleting',
  'running>stopped', 'running>paused', 'running>sleeping', 'running>deleting', 'running>provisioning',
  'stopped>provisioning', 'stopped>deleting',
  'paused>running', 'paused>stopped', 'paused>deleting',
  'sleeping>provisioning', 'sleeping>running', 'sleeping>stopped', 'sleeping>deleting',
  'failed>provisioning', 'failed>deleting',
  'deleting>deleted',
]);

test('the transition table matches the documented lifecycle for every pair', () => {
  for (const from of STATES) {
    for (const to of STATES) {
      const key = `${from}>${to}`;
      assert.equal(canTransition(from, to), EXPECTED_ALLOWED.has(key), key);
      if (EXPECTED_ALLOWED.has(key)) assert.doesNotThrow(() => assertTransition(from, to));
      else assert.throws(() => assertTransition(from, to), (e: unknown) => e instanceof InvalidTransition && e.from === from && e.to === to);
    }
  }
});

test('deleted is terminal and every state can be deleted except deleted itself', () => {
  assert.deepEqual(ALLOWED.deleted, []);
  for (const s of STATES) if (s !== 'deleting' && s !== 'deleted') assert.ok(canTransition(s, 'deleting'), s);
});
