import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { parseDpkgQuery, HOST_PACKAGES } from '../../src/host/setup/packages.ts';
import { createReporter, formatSeconds } from '../../src/host/setup/progress.ts';

test('dpkg-query output: only fully installed packages count', () => {
  const out = 'runc\tii \nnftables\trc \ntini\tiU \nqemu-utils\tiiR\nbusybox-static\tii \nlibc6:amd64\tii \n';
  assert.deepEqual([...parseDpkgQuery(out)].sort(), ['busybox-static', 'libc6', 'runc']);
});

test('CI installs every Debian package `hearth setup` would, so the suite runs on what a host gets', () => {
  const ci = fs.readFileSync(new URL('../../.ci/run', import.meta.url), 'utf8');
  const installLine = ci.slice(ci.indexOf('apt-get install'), ci.indexOf('>/dev/null', ci.indexOf('apt-get install')));
  const inCi = new Set(installLine.split(/[\s\\]+/));
  assert.deepEqual(HOST_PACKAGES.filter((p) => !inCi.has(p)), [], 'packages hearth setup installs but CI does not');
  assert.equal(new Set(HOST_PACKAGES).size, HOST_PACKAGES.length, 'no package listed twice');
});

test('durations print short', () => {
  assert.deepEqual([0.04, 3.21, 14.6, 66, 119.6, 125].map(formatSeconds), ['0.0s', '3.2s', '15s', '66s', '120s', '2m05s']);
});

test('without a TTY every step and tool line is a timestamped line', async () => {
  const lines: string[] = [];
  const r = createReporter({ log: (l) => lines.push(l) });
  const v = await r.step('image x', async () => {
    r.tool('I: downloading');
    return 42;
  }, (n) => `got ${n}`);
  await assert.rejects(r.step('image y', async () => { throw new Error('nope'); }, () => ''), /nope/);
  r.close();
  assert.equal(v, 42);
  const bare = lines.map((l) => l.replace(/^\d\d:\d\d:\d\d /, ''));
  assert.deepEqual(bare, ['▸ image x', '  I: downloading', '✓ image x: got 42', '▸ image y', '✗ image y: FAILED after 0.0s: nope']);
  for (const l of lines) assert.match(l, /^\d\d:\d\d:\d\d /);
});
