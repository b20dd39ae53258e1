import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration, formatDuration, DurationError, MAX_DURATION_SECONDS } from '../../src/core/duration.ts';

test('durations parse to whole seconds', () => {
  const cases: [unknown, number][] = [
    ['30s', 30], ['5m', 300], ['1h', 3600], ['2d', 172800], ['1h30m', 5400], ['90', 90], [300, 300], [' 10M ', 600],
  ];
  for (const [input, want] of cases) assert.equal(parseDuration(input), want, JSON.stringify(input));
});

test('malformed durations are refused with a hint', () => {
  for (const bad of ['', 'abc', '5x', '-5m', '5m3', 'm', 0, -1, 1.5, null, {}, '0s', Infinity]) {
    assert.throws(() => parseDuration(bad), (e: unknown) => e instanceof DurationError && /"30s", "5m", "1h"/.test(e.message), JSON.stringify(bad));
  }
});

test('durations format back to the largest whole unit', () => {
  assert.equal(formatDuration(300), '5m');
  assert.equal(formatDuration(7200), '2h');
  assert.equal(formatDuration(86400), '1d');
  assert.equal(formatDuration(61), '61s');
});

test('durations past 100 years are refused, so now + duration is always a date', () => {
  assert.equal(parseDuration(MAX_DURATION_SECONDS), MAX_DURATION_SECONDS);
  for (const bad of [MAX_DURATION_SECONDS + 1, 1e308, '99999999999999d', `${MAX_DURATION_SECONDS + 1}`]) {
    assert.throws(() => parseDuration(bad), DurationError, String(bad));
  }
});
