import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SshAuthGuard } from '../../src/ssh/auth-guard.ts';

test('at most concurrentPasswordChecks password checks run at once, and every one runs', async () => {
  const guard = new SshAuthGuard({ triesPerConnection: 6, failuresBurst: 20, failuresPerMinute: 10, concurrentPasswordChecks: 2 });
  let running = 0;
  let peak = 0;
  const check = () => guard.check(async () => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 5));
    running--;
    return true;
  });
  const results = await Promise.all(Array.from({ length: 12 }, check));
  assert.equal(results.length, 12);
  assert.ok(results.every(Boolean));
  assert.equal(peak, 2);
  // A check that throws still frees its slot.
  await assert.rejects(guard.check(async () => { throw new Error('boom'); }));
  assert.deepEqual(await Promise.all([check(), check(), check()]), [true, true, true]);
  assert.equal(peak, 2);
});

test('a source that spent its failure budget may not try; another source still may', () => {
  const guard = new SshAuthGuard({ triesPerConnection: 6, failuresBurst: 3, failuresPerMinute: 1, concurrentPasswordChecks: 2 });
  for (let i = 0; i < 3; i++) {
    assert.ok(guard.mayTry('198.51.100.1'));
    guard.failed('198.51.100.1');
  }
  assert.equal(guard.mayTry('198.51.100.1'), false);
  assert.ok(guard.mayTry('198.51.100.2'));
});
