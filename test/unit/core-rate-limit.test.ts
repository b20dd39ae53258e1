import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimiter } from '../../src/core/rate-limit.ts';

test('rate limit: a burst is spent, then tokens come back at the rate', () => {
  const rl = new RateLimiter({ burst: 3, perSecond: 2 });
  assert.deepEqual([1, 2, 3, 4].map(() => rl.take('a', 0)), [true, true, true, false]);
  assert.equal(rl.retryAfterMs('a', 0), 500);
  assert.equal(rl.take('a', 499), false, 'not yet a whole token');
  assert.equal(rl.take('a', 500), true);
  assert.equal(rl.take('b', 500), true, 'keys are separate');
  assert.equal(rl.take('a', 100_000, 3), true, 'refill stops at the burst');
  assert.equal(rl.take('a', 100_000), false);
});

test('rate limit: the table is bounded; the least recently used key is dropped', () => {
  const rl = new RateLimiter({ burst: 1, perSecond: 0.001, maxKeys: 2 });
  assert.equal(rl.take('a', 0), true);
  assert.equal(rl.take('b', 0), true);
  assert.equal(rl.take('a', 1), false, 'a is spent (and now the most recent)');
  assert.equal(rl.take('c', 2), true, 'c evicts b, the least recent');
  assert.equal(rl.take('a', 3), false, 'a was kept');
  assert.equal(rl.take('b', 4), true, 'b starts afresh');
});
