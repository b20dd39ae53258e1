/**
 * Two workspaces of one disk size created at once both get a disk: the
 * empty-image template of that size is made once, not raced (two makers in
 * the same millisecond used to share a temporary name, and the second
 * rename failed the create). Real mkfs.ext4 in a temporary directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diskTemplate } from '../../src/host/drivers/container/disk.ts';

test('concurrent makers of one template size share it and leave no temporary file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hearth-disk-template-'));
  try {
    const files = await Promise.all(Array.from({ length: 4 }, () => diskTemplate(dir, 256)));
    assert.equal(new Set(files).size, 1);
    assert.ok((await stat(files[0]!)).size >= 256 * 1024 * 1024);
    assert.deepEqual(await readdir(dir), ['ext4-256m.img']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
