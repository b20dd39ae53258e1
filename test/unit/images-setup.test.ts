import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDpkgQuery, HOST_PACKAGES } from '../../src/host/setup/packages.ts';
import { createReporter, formatSeconds } from '../../src/host/setup/progress.ts';

test('dpkg-query output: only fully installed packages count', () => {
  const out = 'runc\tii \nnftables\trc \ntini\tiU \nqemu-utils\tiiR\nbusybox-static\tii \nlibc6:amd64\tii \n';
  assert.deepEqual([...parseDpkgQuery(out)].sort(), ['busybox-static', 'libc6', 'runc']);
});

test('the host package list is what Hearth needs', () => {
  assert.deepEqual(HOST_PACKAGES, [
    'runc', 'nftables', 'tini', 'busybox-static', 'e2fsprogs', 'mmdebstrap',
    'qemu-system-x86', 'qemu-utils', 'erofs-utils', 'iproute2', 'procps',
    'openssh-client', 'sshpass', 'pebble',
    'attr', 'docker-registry',
    'haproxy',
  ]);
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
