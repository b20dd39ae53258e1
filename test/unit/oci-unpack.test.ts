/**
 * Hostile layers against the unpacker, on real files: each case is a real
 * tar stream that creates entries under `d/`, then swaps `d` for a symlink to
 * a canary directory beside the layer root (the host), then relies on
 * something the unpacker does later by path (whiteouts, device nodes,
 * xattrs, opaque markers, directory times, hard links). The canary must come
 * out unchanged, and nothing but the layer root may be written. Also: the
 * bounds of oci/limits.ts (gzip bomb, entry count, path depth), enforced
 * while the stream is read.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { readTar } from '../../src/host/images/oci/tar.ts';
import { unpackLayer } from '../../src/host/images/oci/unpack.ts';
import { unpackVerified } from '../../src/host/images/oci/records.ts';
import { DEFAULT_IMAGE_LIMITS, imageLimits, type ImageLimits } from '../../src/host/images/oci/limits.ts';
import { ImageLimitError, UnsafeLayerError } from '../../src/host/images/errors.ts';
import { sha256, tar, type TarSpec } from '../helpers/oci-images.ts';
import { makeSandbox, removeSetfattrShim, type UnpackSandbox } from '../helpers/unpack-sandbox.ts';

const isRoot = process.getuid?.() === 0;
/** A valid vfs_cap_data (revision 2, effective, CAP_NET_RAW permitted): the kernel refuses malformed ones. */
const CAP_NET_RAW = Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
after(removeSetfattrShim);

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += 4096) yield b.subarray(i, i + 4096);
}

async function unpack(sb: UnpackSandbox, entries: TarSpec[] | Buffer, limits?: ImageLimits) {
  const archive = Buffer.isBuffer(entries) ? entries : tar(entries);
  return unpackLayer(readTar(once(archive)), sb.root, { chown: false, limits });
}

/** Run a hostile layer: it may be refused (UnsafeLayerError) or unpacked harmlessly, but nothing outside the root changes. */
async function attack(name: string, entries: (canary: string) => TarSpec[]): Promise<void> {
  for (const how of ['absolute', 'relative'] as const) {
    const sb = await makeSandbox();
    try {
      const target = how === 'absolute' ? sb.canary : '../canary';
      let outcome = 'unpacked';
      try {
        await unpack(sb, entries(target));
      } catch (e) {
        assert.ok(e instanceof UnsafeLayerError, `${name} (${how} symlink): refused with UnsafeLayerError, got ${(e as Error).stack}`);
        outcome = 'refused';
      }
      assert.deepEqual(await sb.changes(), [], `${name} (${how} symlink, ${outcome}): nothing outside the layer root changed`);
      assert.deepEqual(await sb.xattrEscapes(), [], `${name} (${how} symlink, ${outcome}): no xattr set outside the layer root`);
      if (outcome === 'unpacked') {
        const st = await fs.lstat(path.join(sb.root, 'd'));
        assert.ok(st.isSymbolicLink(), `${name}: the last entry for d wins, and it is the symlink`);
      }
    } finally {
      await sb.cleanup();
    }
  }
}

test('a whiteout under a directory later swapped for a symlink makes no device node on the host', { skip: !isRoot && 'needs root (mknod)' }, async () => {
  await attack('whiteout', (t) => [
    { type: 'dir', path: 'd/' },
    { type: 'file', path: 'd/.wh.x' },
    { type: 'symlink', path: 'd', target: t },
  ]);
});

test('an overlay-form whiteout (a 0:0 device node) under a swapped directory makes no device node on the host', { skip: !isRoot && 'needs root (mknod)' }, async () => {
  await attack('device node', (t) => [
    { type: 'dir', path: 'd/' },
    { type: 'char', path: 'd/x', major: 0, minor: 0 },
    { type: 'symlink', path: 'd', target: t },
  ]);
});

test('xattrs of a file under a swapped directory are not set on the host file of the same name', async () => {
  await attack('xattr', (t) => [
    { type: 'dir', path: 'd/' },
    { type: 'file', path: 'd/f', content: 'x', xattrs: { 'security.capability': CAP_NET_RAW, 'user.mark': 'pwned' } },
    { type: 'symlink', path: 'd', target: t },
  ]);
});

test('an opaque marker under a swapped directory does not mark the host directory', async () => {
  await attack('opaque', (t) => [
    { type: 'dir', path: 'd/' },
    { type: 'dir', path: 'd/e/' },
    { type: 'file', path: 'd/e/.wh..wh..opq' },
    { type: 'symlink', path: 'd', target: t },
  ]);
});

test('directory times under a swapped directory do not change host directory times', async () => {
  await attack('mtime', (t) => [
    { type: 'dir', path: 'd/', mtime: 42 },
    { type: 'dir', path: 'd/sub/', mtime: 12345 },
    { type: 'dir', path: 'd/e/', mtime: 12345 },
    { type: 'symlink', path: 'd', target: t },
  ]);
});

test('hard links never reach a file outside the root, through a symlink, a swapped directory, ".." or an absolute path', async () => {
  await attack('hardlink through symlink', (t) => [
    { type: 'symlink', path: 'd', target: t },
    { type: 'hardlink', path: 'h', target: 'd/f' },
  ]);
  await attack('hardlink after swap', (t) => [
    { type: 'dir', path: 'd/' },
    { type: 'file', path: 'd/f', content: 'layer' },
    { type: 'symlink', path: 'd', target: t },
    { type: 'hardlink', path: 'h', target: 'd/f' },
  ]);
  await attack('hardlink dotdot', (t) => [{ type: 'symlink', path: 'd', target: t }, { type: 'hardlink', path: 'h', target: '../canary/f' }]);
  const sb = await makeSandbox();
  try {
    await assert.rejects(unpack(sb, [{ type: 'hardlink', path: 'h', target: `${sb.canary}/f` }]), UnsafeLayerError, 'an absolute target is a path in the layer, which has no such file');
    await assert.rejects(unpack(sb, [{ type: 'file', path: 'a', content: 'x' }, { type: 'hardlink', path: 'a/b', target: 'a' }]), UnsafeLayerError);
    assert.deepEqual(await sb.changes(), []);
  } finally {
    await sb.cleanup();
  }
});

test('writes through a symlinked parent, ".." and a file as a parent are refused', async () => {
  await attack('write through swapped dir', (t) => [
    { type: 'dir', path: 'd/' },
    { type: 'symlink', path: 'd', target: t },
    { type: 'file', path: 'd/f', content: 'pwned' },
  ]);
  await attack('dir through symlink', (t) => [{ type: 'symlink', path: 'd', target: t }, { type: 'dir', path: 'd/sub/', mode: 0o777 }]);
  const sb = await makeSandbox();
  try {
    await assert.rejects(unpack(sb, [{ type: 'file', path: '../canary/f', content: 'pwned' }]), UnsafeLayerError);
    await assert.rejects(unpack(sb, [{ type: 'file', path: 'a/../../canary/f', content: 'pwned' }]), UnsafeLayerError);
    await sb.reset();
    await assert.rejects(unpack(sb, [{ type: 'file', path: 'a', content: 'x' }, { type: 'file', path: 'a/b', content: 'y' }]), UnsafeLayerError);
    assert.deepEqual(await sb.changes(), []);
  } finally {
    await sb.cleanup();
  }
});

test('an honest layer still gets its whiteouts, opaque markers, xattrs, hard links and times, all inside the root', { skip: !isRoot && 'needs root (mknod)' }, async () => {
  const sb = await makeSandbox();
  try {
    const stats = await unpack(sb, [
      { type: 'dir', path: 'etc/', mtime: 1000 },
      { type: 'file', path: 'etc/.wh.gone' },
      { type: 'dir', path: 'var/', mtime: 2000 },
      { type: 'file', path: 'var/.wh..wh..opq' },
      { type: 'file', path: 'bin/ping', content: 'elf', xattrs: { 'security.capability': CAP_NET_RAW } },
      { type: 'hardlink', path: 'bin/ping6', target: 'bin/ping' },
      { type: 'symlink', path: 'lib', target: '/usr/lib' },
    ]);
    assert.deepEqual([stats.whiteouts, stats.opaque, stats.hardlinks, stats.symlinks], [1, 1, 1, 1]);
    const wh = await fs.lstat(path.join(sb.root, 'etc/gone'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'whiteout is a 0:0 character device');
    assert.equal((await fs.stat(path.join(sb.root, 'etc'))).mtimeMs, 1000 * 1000, 'directory time applied after its whiteout');
    assert.equal((await fs.stat(path.join(sb.root, 'var'))).mtimeMs, 2000 * 1000);
    assert.equal((await fs.stat(path.join(sb.root, 'bin/ping6'))).nlink, 2);
    assert.deepEqual((await sb.xattrTargets()).sort(), [path.join(sb.root, 'bin/ping'), path.join(sb.root, 'var')]);
    assert.deepEqual(await sb.changes(), []);
  } finally {
    await sb.cleanup();
  }
});

test('limits: a gzip bomb stops at the uncompressed limit while it streams, not after', async () => {
  const sb = await makeSandbox();
  try {
    const limits = { ...DEFAULT_IMAGE_LIMITS, maxUncompressedBytes: 1024 * 1024 };
    const inner = tar([{ type: 'file', path: 'zeros', content: Buffer.alloc(64 * 1024 * 1024) }]);
    const blob = gzipSync(inner, { level: 9 });
    assert.ok(blob.length < 512 * 1024, `the bomb is small compressed (${blob.length} bytes)`);
    const file = path.join(sb.dir, 'bomb.gz');
    await fs.writeFile(file, blob);
    await assert.rejects(unpackVerified({ diffId: sha256(inner), file, compression: 'gzip', compressedDigest: null, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', source: 'bomb', limits }, sb.root),
      (e: Error & { hint?: string }) => e instanceof ImageLimitError && /larger than 1048576 bytes uncompressed/.test(e.message) && /HEARTH_IMAGE_MAX_UNCOMPRESSED_BYTES/.test(e.hint ?? ''));
    const st = await fs.stat(path.join(sb.root, 'zeros')).catch(() => null);
    assert.ok(!st || st.size <= 2 * 1024 * 1024, `at most about the limit was written (${st?.size})`);
    // Zeros after the end of the archive are read too (the diff_id covers them): bounded the same way.
    await sb.reset();
    const trailer = Buffer.concat([tar([{ type: 'file', path: 'a', content: 'x' }]), Buffer.alloc(32 * 1024 * 1024)]);
    await fs.writeFile(file, gzipSync(trailer));
    await assert.rejects(unpackVerified({ diffId: sha256(trailer), file, compression: 'gzip', compressedDigest: null, mediaType: 'x', source: 'trailer bomb', limits }, sb.root), ImageLimitError);
  } finally {
    await sb.cleanup();
  }
});

test('limits: too many entries and too deep paths are refused', async () => {
  const sb = await makeSandbox();
  try {
    const many: TarSpec[] = Array.from({ length: 200 }, (_, i) => ({ type: 'file', path: `f${i}` }));
    await assert.rejects(unpack(sb, many, { ...DEFAULT_IMAGE_LIMITS, maxEntries: 100 }), (e: Error) => e instanceof ImageLimitError && /more than 100 entries/.test(e.message));
    const names = await fs.readdir(sb.root);
    assert.ok(names.length <= 100, `stopped at the limit (${names.length} files)`);
    await sb.reset();
    const deep = `${'a/'.repeat(DEFAULT_IMAGE_LIMITS.maxPathDepth)}f`;
    await assert.rejects(unpack(sb, [{ type: 'file', path: deep, content: 'x' }]), (e: Error) => e instanceof ImageLimitError && /directories deep/.test(e.message));
    await assert.rejects(fs.access(path.join(sb.root, 'a')), /ENOENT/, 'refused before any directory was made');
    await unpack(sb, [{ type: 'file', path: `${'b/'.repeat(DEFAULT_IMAGE_LIMITS.maxPathDepth - 1)}f`, content: 'x' }]);
  } finally {
    await sb.cleanup();
  }
});

test('limits come from HEARTH_IMAGE_MAX_*; a bad value is an error, not a silent default', () => {
  assert.deepEqual(imageLimits({}), DEFAULT_IMAGE_LIMITS);
  const l = imageLimits({ HEARTH_IMAGE_MAX_COMPRESSED_BYTES: '10', HEARTH_IMAGE_MAX_UNCOMPRESSED_BYTES: '20', HEARTH_IMAGE_MAX_ENTRIES: '30', HEARTH_IMAGE_MAX_PATH_DEPTH: '40' });
  assert.deepEqual(l, { maxCompressedBytes: 10, maxUncompressedBytes: 20, maxEntries: 30, maxPathDepth: 40 });
  for (const bad of ['0', '-1', '1.5', 'lots']) assert.throws(() => imageLimits({ HEARTH_IMAGE_MAX_ENTRIES: bad }), /HEARTH_IMAGE_MAX_ENTRIES must be a positive integer/);
});
