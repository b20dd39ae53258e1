import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filterDecision, normalizeVmPath, tarHeader } from '../../src/host/snapshots/archive.ts';
import { readTar } from '../../src/host/images/oci/tar.ts';
import { parseArchiveRequest } from '../../src/control/snapshots.ts';

test('vm_paths include a path, its subtree and the dirs leading to it; exclusions win', () => {
  const f = { include: ['srv/app', 'etc/hosts'], exclude: ['srv/app/node_modules'] };
  const cases: Array<[string, string]> = [
    ['srv', 'descend'], ['srv/app', 'include'], ['srv/app/main.js', 'include'], ['srv/app/node_modules', 'skip'],
    ['srv/app/node_modules/x', 'skip'], ['srv/other', 'skip'], ['etc', 'descend'], ['etc/hosts', 'include'], ['etc/passwd', 'skip'],
    ['srv/application', 'skip'], ['tmp', 'skip'],
  ];
  for (const [p, want] of cases) assert.equal(filterDecision(p, f), want, p);
  assert.equal(filterDecision('anything/at/all', { include: [], exclude: [] }), 'include', 'no vm_paths: everything');
  assert.equal(filterDecision('tmp/x', { include: [], exclude: ['tmp'] }), 'skip');
  assert.equal(normalizeVmPath('/srv//app/./'), 'srv/app');
  assert.throws(() => normalizeVmPath('/srv/../etc'), /must not contain/);
});

test('archive headers are ustar, with pax for long names, and read back as written', async () => {
  const long = `d/${'x'.repeat(150)}`;
  const data = Buffer.concat([
    tarHeader({ name: 'a/', type: '5', mode: 0o40755, uid: 0, gid: 0, size: 0, mtime: 1 }),
    tarHeader({ name: long, type: '0', mode: 0o100644, uid: 1000, gid: 1000, size: 3, mtime: 2 }), Buffer.from('abc'), Buffer.alloc(509),
    tarHeader({ name: 'a/.wh.gone', type: '0', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 3 }),
    tarHeader({ name: 'l', type: '2', mode: 0o120777, uid: 0, gid: 0, size: 0, mtime: 4, linkname: '/etc/hosts' }),
    tarHeader({ name: 'h', type: '1', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 5, linkname: long }),
    Buffer.alloc(1024),
  ]);
  const got: string[] = [];
  async function* src() { yield data; }
  for await (const { entry, body } of readTar(src())) {
    let text = '';
    for await (const c of body) text += c.toString();
    got.push(`${entry.type} ${entry.path} ${(entry.mode).toString(8)} ${entry.uid} ${entry.linkpath}${text}`);
  }
  assert.deepEqual(got, ['dir a/ 755 0 ', `file ${long} 644 1000 abc`, 'file a/.wh.gone 644 0 ', 'symlink l 777 0 /etc/hosts', `hardlink h 644 0 ${long}`]);
});

test('the createArchive body: version, format and paths are checked', () => {
  assert.deepEqual(parseArchiveRequest({}), { version: null, include: [], exclude: [] });
  assert.deepEqual(parseArchiveRequest({ version: 'v1.2', format: 'tar.gz', vm_paths: ['/srv/app/'], exclude_vm_paths: ['/srv/app/tmp'] }), { version: 'v1.2', include: ['srv/app'], exclude: ['srv/app/tmp'] });
  assert.throws(() => parseArchiveRequest({ version: '../x' }), /version must be/);
  assert.throws(() => parseArchiveRequest({ format: 'zip' }), /format must be one of tar\.gz/);
  assert.throws(() => parseArchiveRequest({ vm_paths: ['relative'] }), /absolute paths/);
  assert.throws(() => parseArchiveRequest({ vm_paths: ['/a/../b'] }), /must not contain/);
});
