import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { growVmDisk } from '../../src/host/drivers/microvm/boot.ts';
import { diskBytes, diskPaths, growDisk, hasDisk } from '../../src/host/drivers/container/disk.ts';

const hasQemuImg = spawnSync('qemu-img', ['--version']).status === 0;

test('a microVM disk grows to a raised disk_size_mb, never shrinks, and is probed only when the size changed', { skip: hasQemuImg ? false : 'qemu-img is not installed (apt-get install qemu-utils)' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-vmdisk-'));
  const disk = path.join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '256M']);
  const size = () => (JSON.parse(execFileSync('qemu-img', ['info', '--output=json', disk], { encoding: 'utf8' })) as { 'virtual-size': number })['virtual-size'];
  assert.equal(await growVmDisk(disk, 512), true);
  assert.equal(size(), 512 * 1024 * 1024);
  assert.equal(fs.readFileSync(`${disk}.size_mb`, 'utf8'), '512');
  assert.equal(await growVmDisk(disk, 512), false, 'recorded: nothing to do');
  assert.equal(await growVmDisk(disk, 256), false, 'never shrinks');
  assert.equal(size(), 512 * 1024 * 1024);
  fs.rmSync(dir, { recursive: true });
});

test('container disk paths and sizes; growth without a mounted disk waits for the next start', async () => {
  const d = diskPaths('/data/workspaces/ws_1');
  assert.deepEqual(d, { image: '/data/workspaces/ws_1/disk.img', mount: '/data/workspaces/ws_1/disk', upper: '/data/workspaces/ws_1/disk/upper', work: '/data/workspaces/ws_1/disk/work', console: '/data/workspaces/ws_1/disk/console.log' });
  assert.equal(diskBytes(256), 256 * 1024 * 1024);
  assert.throws(() => diskBytes(10), /at least|>= 64/);
  assert.throws(() => diskBytes(256.5));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-ctdisk-'));
  assert.equal(hasDisk(dir), false);
  assert.equal(await growDisk(dir, 512), 'next-start', 'no disk yet: made at the size');
  fs.writeFileSync(path.join(dir, 'disk.img'), '');
  fs.truncateSync(path.join(dir, 'disk.img'), 256 * 1024 * 1024);
  assert.equal(hasDisk(dir), true);
  assert.equal(await growDisk(dir, 512), 'next-start', 'not mounted: grown offline at the next mount');
  assert.equal(fs.statSync(path.join(dir, 'disk.img')).size, 256 * 1024 * 1024, 'untouched until then');
  fs.rmSync(dir, { recursive: true });
});
