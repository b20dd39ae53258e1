import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildOnce, reapStaleScratch, writeFileAtomic } from '../../src/host/images/atomic.ts';
import { listTree } from '../../src/host/images/agent-drive.ts';
import { resolveInRoot } from '../../src/host/images/rootfs.ts';

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-atomic-'));
  try {
    await fn(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

test('buildOnce builds once, then reports a cache hit without building', () => withDir(async (dir) => {
  let builds = 0;
  const final = path.join(dir, 'out', 'thing-1');
  const build = async (tmp: string) => {
    builds++;
    await fs.writeFile(path.join(tmp, 'f'), 'x');
  };
  assert.deepEqual(await buildOnce(final, path.join(dir, 'tmp'), build), { dir: final, cached: false });
  assert.deepEqual(await buildOnce(final, path.join(dir, 'tmp'), build), { dir: final, cached: true });
  assert.equal(builds, 1);
  assert.equal(await fs.readFile(path.join(final, 'f'), 'utf8'), 'x');
  assert.deepEqual(await fs.readdir(path.join(dir, 'tmp')), []);
}));

test('a failed build leaves neither the artifact nor its scratch dir', () => withDir(async (dir) => {
  const final = path.join(dir, 'thing');
  await assert.rejects(buildOnce(final, path.join(dir, 'tmp'), async (tmp) => {
    await fs.writeFile(path.join(tmp, 'half'), '');
    throw new Error('boom');
  }), /boom/);
  await assert.rejects(fs.stat(final));
  assert.deepEqual(await fs.readdir(path.join(dir, 'tmp')), []);
}));

test('when another builder wins the race, its artifact is kept', () => withDir(async (dir) => {
  const final = path.join(dir, 'thing');
  const res = await buildOnce(final, path.join(dir, 'tmp'), async (tmp) => {
    await fs.writeFile(path.join(tmp, 'mine'), '');
    await fs.mkdir(final);
    await fs.writeFile(path.join(final, 'theirs'), '');
  });
  assert.deepEqual(res, { dir: final, cached: true });
  assert.deepEqual(await fs.readdir(final), ['theirs']);
  assert.deepEqual(await fs.readdir(path.join(dir, 'tmp')), []);
}));

test('stale scratch dirs of dead processes are reaped, live ones kept', () => withDir(async (dir) => {
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  await fs.mkdir(path.join(dir, `layer.${dead}.0123abcd`));
  await fs.mkdir(path.join(dir, `layer.${process.pid}.0123abcd`));
  await fs.mkdir(path.join(dir, 'unrelated'));
  assert.deepEqual(await reapStaleScratch(dir), [`layer.${dead}.0123abcd`]);
  assert.deepEqual((await fs.readdir(dir)).sort(), [`layer.${process.pid}.0123abcd`, 'unrelated']);
  assert.deepEqual(await reapStaleScratch(path.join(dir, 'missing')), []);
}));

test('writeFileAtomic replaces a file in one step', () => withDir(async (dir) => {
  const f = path.join(dir, 'a', 'b.json');
  await writeFileAtomic(f, '1');
  await writeFileAtomic(f, '2');
  assert.equal(await fs.readFile(f, 'utf8'), '2');
  assert.deepEqual(await fs.readdir(path.dirname(f)), ['b.json']);
}));

test('listTree hashes contents, modes and symlinks in a stable order', () => withDir(async (dir) => {
  await fs.mkdir(path.join(dir, 'node_modules/x'), { recursive: true });
  await fs.writeFile(path.join(dir, 'agent.mjs'), 'hello');
  await fs.writeFile(path.join(dir, 'node_modules/x/a.node'), 'bin', { mode: 0o755 });
  await fs.symlink('x/a.node', path.join(dir, 'node_modules/link'));
  const tree = await listTree(dir);
  assert.deepEqual(tree.map((e) => [e.path, e.type]), [
    ['agent.mjs', 'file'], ['node_modules', 'dir'], ['node_modules/link', 'symlink'], ['node_modules/x', 'dir'], ['node_modules/x/a.node', 'file'],
  ]);
  assert.equal(tree[0]!.content, '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  assert.equal(tree[2]!.content, 'x/a.node');
  assert.equal(tree[4]!.mode, 0o755);
}));

test('paths inside a built tree resolve like a chroot: absolute links stay inside', () => withDir(async (dir) => {
  await fs.mkdir(path.join(dir, 'usr/lib/x86_64-linux-gnu'), { recursive: true });
  await fs.writeFile(path.join(dir, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'), '');
  await fs.symlink('usr/lib', path.join(dir, 'lib'));
  await fs.mkdir(path.join(dir, 'lib64'));
  await fs.symlink('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', path.join(dir, 'lib64/ld-linux-x86-64.so.2'));
  await fs.mkdir(path.join(dir, 'etc'));
  await fs.symlink('../../../etc/../usr/lib', path.join(dir, 'usr/lib/x86_64-linux-gnu/up'));
  assert.equal(await resolveInRoot(dir, 'lib64/ld-linux-x86-64.so.2'), path.join(dir, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'));
  assert.equal(await resolveInRoot(dir, '/lib/x86_64-linux-gnu/up'), path.join(dir, 'usr/lib'));
  await fs.symlink('loop', path.join(dir, 'loop'));
  await assert.rejects(resolveInRoot(dir, 'loop'), /too many symlinks/);
}));
