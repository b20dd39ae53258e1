import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readTar, parseNumeric, parsePax, TarFormatError, type TarEntry } from '../../src/host/images/oci/tar.ts';
import { normalizeEntryPath, xattrRestoreScript, UnsafeLayerError } from '../../src/host/images/oci/unpack.ts';
import { tar } from '../helpers/oci-images.ts';

async function* chunks(b: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function entries(b: Buffer, chunk = 7): Promise<Array<TarEntry & { data: string }>> {
  const out: Array<TarEntry & { data: string }> = [];
  for await (const { entry, body } of readTar(chunks(b, chunk))) {
    const parts: Buffer[] = [];
    for await (const c of body) parts.push(c);
    out.push({ ...entry, data: Buffer.concat(parts).toString() });
  }
  return out;
}

test('the reader yields every kind of entry with its metadata, whatever the chunking', async () => {
  const long = `deep/${'d'.repeat(120)}/file-with-a-long-name.txt`;
  const archive = tar([
    { type: 'dir', path: 'etc/', mode: 0o750, uid: 1, gid: 2, mtime: 123 },
    { type: 'file', path: 'etc/hosts', content: 'x'.repeat(1000), mode: 0o4755, uid: 1000, gid: 100 },
    { type: 'file', path: long, content: 'long', xattrs: { 'security.capability': Buffer.from([1, 2, 0, 255]), 'user.a': 'b' } },
    { type: 'symlink', path: 'lnk', target: `/${'t'.repeat(150)}` },
    { type: 'hardlink', path: 'hl', target: 'etc/hosts' },
    { type: 'char', path: 'null', major: 1, minor: 3 },
    { type: 'fifo', path: 'p' },
  ]);
  for (const size of [1, 7, 512, 100_000]) {
    const got = await entries(archive, size);
    assert.deepEqual(got.map((e) => [e.path, e.type]), [['etc/', 'dir'], ['etc/hosts', 'file'], [long, 'file'], ['lnk', 'symlink'], ['hl', 'hardlink'], ['null', 'char'], ['p', 'fifo']], `chunk ${size}`);
    assert.deepEqual([got[0]!.mode, got[0]!.uid, got[0]!.gid, got[0]!.mtime], [0o750, 1, 2, 123]);
    assert.deepEqual([got[1]!.mode, got[1]!.uid, got[1]!.size, got[1]!.data.length], [0o4755, 1000, 1000, 1000]);
    assert.equal(got[2]!.data, 'long');
    assert.deepEqual(got[2]!.xattrs['security.capability'], Buffer.from([1, 2, 0, 255]), 'binary xattr values survive');
    assert.equal(got[3]!.linkpath, `/${'t'.repeat(150)}`);
    assert.equal(got[4]!.linkpath, 'etc/hosts');
    assert.deepEqual([got[5]!.devmajor, got[5]!.devminor], [1, 3]);
  }
});

test('unread entry data is skipped, and the whole stream is consumed (diff_ids hash all of it)', async () => {
  const archive = Buffer.concat([tar([{ type: 'file', path: 'a', content: 'A'.repeat(5000) }, { type: 'file', path: 'b', content: 'B' }]), Buffer.alloc(4096)]);
  const h = createHash('sha256');
  async function* hashed() {
    for await (const c of chunks(archive, 333)) {
      h.update(c);
      yield c;
    }
  }
  const names: string[] = [];
  for await (const { entry } of readTar(hashed())) names.push(entry.path);
  assert.deepEqual(names, ['a', 'b']);
  assert.equal(h.digest('hex'), createHash('sha256').update(archive).digest('hex'), 'trailing padding was read too');
});

test('corrupt archives fail with a tar error, not a hang or a crash', async () => {
  const good = tar([{ type: 'file', path: 'a', content: 'hello' }]);
  const badSum = Buffer.from(good);
  badSum[10] = 0x41;
  await assert.rejects(entries(badSum), (e: Error) => e instanceof TarFormatError && /bad header checksum/.test(e.message));
  await assert.rejects(entries(good.subarray(0, 512 + 2)), /unexpected end of archive/);
  await assert.rejects(entries(good.subarray(0, 100)), /truncated header/);
  const sparse = Buffer.from(good);
  sparse[156] = 'S'.charCodeAt(0);
  let sum = 0;
  sparse.fill(0x20, 148, 156);
  for (let i = 0; i < 512; i++) sum += sparse[i]!;
  sparse.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  await assert.rejects(entries(sparse), /unsupported entry type "S"/);
  assert.deepEqual(await entries(Buffer.alloc(0)), [], 'an empty stream is an empty layer');
});

test('numbers: octal, space/NUL padded, base-256; pax records', () => {
  assert.equal(parseNumeric(Buffer.from('0000644\0'), 'mode'), 0o644);
  assert.equal(parseNumeric(Buffer.from('   755 \0'), 'mode'), 0o755);
  assert.equal(parseNumeric(Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0]), 'size'), 2 * 65536);
  assert.throws(() => parseNumeric(Buffer.from('12x\0'), 'uid'), /not an octal number/);
  const pax = parsePax(Buffer.from('16 path=a/b/c.d\n21 SCHILY.xattr.x=\x00\x01\n'));
  assert.equal(pax.get('path')!.toString(), 'a/b/c.d');
  assert.deepEqual(pax.get('SCHILY.xattr.x'), Buffer.from([0, 1]));
  assert.throws(() => parsePax(Buffer.from('99 path=x\n')), /malformed pax record length/);
});

test('entry paths normalize inside the root; climbing out is refused', () => {
  assert.deepEqual(normalizeEntryPath('./a//b/'), ['a', 'b']);
  assert.deepEqual(normalizeEntryPath('/etc/passwd'), ['etc', 'passwd'], 'absolute entry paths are taken relative to the root');
  assert.deepEqual(normalizeEntryPath('a/../b'), ['b']);
  assert.deepEqual(normalizeEntryPath('./'), []);
  for (const p of ['../x', 'a/../../x', '/..', 'a/\0b']) assert.throws(() => normalizeEntryPath(p), UnsafeLayerError, p);
});

test('xattrs are restored through one setfattr script, values in base64, odd names escaped', () => {
  assert.equal(xattrRestoreScript([
    { path: '/l/a', name: 'user.x', value: Buffer.from('1') },
    { path: '/l/a', name: 'trusted.overlay.opaque', value: Buffer.from('y') },
    { path: '/l/we=ird\nname', name: 'security.capability', value: Buffer.from([0, 255]) },
  ]), '# file: /l/a\nuser.x=0sMQ==\ntrusted.overlay.opaque=0seQ==\n\n# file: /l/we\\075ird\\012name\nsecurity.capability=0sAP8=\n\n');
});
