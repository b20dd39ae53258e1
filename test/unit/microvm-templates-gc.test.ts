/**
 * Which microVM templates `hearth images gc` removes: the ones no current
 * template key can name again (withdrawn, unfinished, older version, another
 * agent drive / initramfs / kernel, base disk gone). Others stay: they may be
 * another image's or another shape's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { TEMPLATE_VERSION, collectStaleTemplates, templateStaleReason, type TemplateMeta } from '../../src/host/drivers/microvm/templates.ts';

const current = { kernel: '/a/vm/kernel/k/vmlinuz', initrd: '/a/vm/initramfs/i1.cpio', agentDisk: '/a/vm/agent/d1.ext4' };
const meta = (over: Partial<TemplateMeta['launch']> & { version?: number } = {}): TemplateMeta => ({
  version: 'version' in over ? over.version : TEMPLATE_VERSION, key: 'sha256:x', image: 'debian-12', base: '/a/vm/base/debian.raw',
  launch: { kernel: over.kernel ?? current.kernel, initrd: over.initrd ?? current.initrd, agentDisk: over.agentDisk ?? current.agentDisk },
});

test('templateStaleReason: only a template a current key can name is kept', () => {
  assert.equal(templateStaleReason('aa', meta(), current, true), null);
  assert.match(templateStaleReason('aa.bad.12.34', meta(), current, true)!, /withdrawn/);
  assert.match(templateStaleReason('aa', null, current, true)!, /unfinished/);
  assert.match(templateStaleReason('aa', meta({ version: undefined }), current, true)!, /version 2 or older/);
  assert.match(templateStaleReason('aa', meta({ version: TEMPLATE_VERSION - 1 }), current, true)!, /version/);
  assert.match(templateStaleReason('aa', meta({ agentDisk: '/a/vm/agent/d0.ext4' }), current, true)!, /agent drive/);
  assert.match(templateStaleReason('aa', meta({ initrd: '/a/vm/initramfs/i0.cpio' }), current, true)!, /initramfs/);
  assert.match(templateStaleReason('aa', meta({ kernel: '/old/vmlinuz' }), current, true)!, /kernel/);
  assert.match(templateStaleReason('aa', meta(), current, false)!, /base disk/);
});

test('collectStaleTemplates: dry run lists, a real run removes exactly the stale ones', async () => {
  const arts = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-tplgc-'));
  try {
    const dir = path.join(arts, 'vm', 'templates');
    const base = path.join(arts, 'vm', 'base', 'debian.raw');
    await fs.mkdir(path.dirname(base), { recursive: true });
    await fs.writeFile(base, '');
    const put = async (name: string, m: TemplateMeta | null) => {
      await fs.mkdir(path.join(dir, name), { recursive: true });
      await fs.writeFile(path.join(dir, name, 'state.bin'), Buffer.alloc(1000));
      if (m) await fs.writeFile(path.join(dir, name, 'template.json'), JSON.stringify({ ...m, base }));
    };
    await put('live0000', meta());
    await put('oldagent', meta({ agentDisk: '/a/vm/agent/d0.ext4' }));
    await put('live0000.bad.1.2', meta());
    await put('partial0', null);
    const dry = await collectStaleTemplates({ artifactsDir: arts, current, dryRun: true });
    assert.equal(dry.removed.length, 3);
    assert.equal(dry.kept, 1);
    assert.equal(dry.freedBytes >= 3000, true);
    assert.equal((await fs.readdir(dir)).length, 4, 'a dry run removes nothing');
    const real = await collectStaleTemplates({ artifactsDir: arts, current });
    assert.deepEqual(real.removed.map((r) => r.split(':')[0]), ['template live0000.bad.1.2 of debian-12', 'template oldagent of debian-12', 'template partial0']);
    assert.deepEqual(await fs.readdir(dir), ['live0000']);
  } finally {
    await fs.rm(arts, { recursive: true, force: true });
  }
});
