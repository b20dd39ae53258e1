/**
 * Container snapshots: file-system snapshots of the workspace's writable
 * layer (`upper/` on the workspace's disk image, disk.ts; a stopped
 * workspace's disk is mounted for the copy and unmounted again). CRIU cannot checkpoint processes on this
 * kernel (docs/host-facts.md), so running programs are not captured: a restore
 * restarts the workspace on the restored files.
 *
 * Consistency: a running container is frozen (cgroup freezer, `runc pause`)
 * while its upper dir is copied, so the copy is one point in time for every
 * process in it; the copy is read from the upper dir itself, not through the
 * mounted overlay, so it is exactly the layer overlay keeps (whiteouts and
 * opaque dirs included).
 *
 * Restore: the sandbox is stopped; the snapshot is copied next to the upper
 * dir, then swapped in by two renames, and overlay's work dir is emptied
 * (it must not hold state from the old upper dir).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DriverSnapshot, SandboxSpec, SandboxState, SnapshotRequest, SnapshotSupport } from '../driver.ts';
import { SnapshotError } from '../../snapshots/store.ts';
import type { Runc } from './runc.ts';
import { copyTree, treeBytes } from './layer-copy.ts';
import { hasDisk, withDisk } from './disk.ts';

export const CONTAINER_SNAPSHOT_FORMAT = 'overlay-upper';

export const CONTAINER_SNAPSHOT_SUPPORT: SnapshotSupport = {
  filesystem: true,
  memory: false,
  reason: 'file-system snapshots of the writable layer; running processes are not captured (CRIU cannot checkpoint on this kernel), a restore restarts the workspace',
};

async function runcState(runc: Runc, id: string): Promise<SandboxState> {
  const st = await runc.state(id).catch(() => null);
  if (st?.status === 'running') return 'running';
  if (st?.status === 'paused' || st?.status === 'pausing') return 'paused';
  return 'stopped';
}

export async function snapshotContainer(runc: Runc, id: string, spec: SandboxSpec, req: SnapshotRequest): Promise<DriverSnapshot> {
  if (!hasDisk(spec.dir)) {
    throw new SnapshotError(`workspace ${spec.workspaceId} has no writable layer yet`, 'start it once before taking a snapshot');
  }
  const before = await runcState(runc, id);
  const freeze = before === 'running';
  if (freeze) await runc.pause(id);
  let state: SandboxState = before;
  try {
    await withDisk(spec.dir, spec.diskSizeMb, (d) => copyTree(d.upper, path.join(req.dir, 'upper')));
  } catch (e) {
    if (freeze) await runc.resume(id).catch(() => undefined);
    throw new SnapshotError(`copying the writable layer of ${spec.workspaceId} failed: ${(e as Error).message}`, 'check free space in the data dir');
  }
  if (freeze) {
    // 'stop': stay frozen so nothing runs between the snapshot and the caller's stop.
    if (req.after === 'stop') state = 'paused';
    else {
      await runc.resume(id);
      state = 'running';
    }
  }
  return { kinds: ['filesystem'], format: CONTAINER_SNAPSHOT_FORMAT, bytes: await treeBytes(path.join(req.dir, 'upper')), state };
}

export async function restoreContainer(runc: Runc, id: string, spec: SandboxSpec, dir: string, snap: Pick<DriverSnapshot, 'format' | 'kinds'>): Promise<{ state: SandboxState }> {
  if (snap.format !== CONTAINER_SNAPSHOT_FORMAT) throw new SnapshotError(`a container cannot restore a ${snap.format} snapshot`, 'restore it on the driver that made it');
  const now = await runcState(runc, id);
  if (now !== 'stopped') throw new SnapshotError(`workspace ${spec.workspaceId} is ${now}; a snapshot is restored into a stopped sandbox`);
  const rootfs = path.join(spec.dir, 'rootfs');
  const mounted = (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === rootfs);
  if (mounted) throw new SnapshotError(`workspace ${spec.workspaceId}'s root file system is still mounted at ${rootfs}`);
  const tag = randomBytes(4).toString('hex');
  // The copy goes onto the workspace's disk, so it counts against disk_size_mb like anything written inside.
  await withDisk(spec.dir, spec.diskSizeMb, async (d) => {
    const fresh = path.join(d.mount, `upper.restore-${tag}`);
    const old = path.join(d.mount, `upper.old-${tag}`);
    try {
      await copyTree(path.join(dir, 'upper'), fresh);
    } catch (e) {
      await fs.rm(fresh, { recursive: true, force: true }).catch(() => undefined);
      const full = /No space left/i.test((e as Error).message);
      throw new SnapshotError(`copying the snapshot into ${spec.workspaceId} failed: ${(e as Error).message}`, full ? `the snapshot does not fit in the workspace's disk (${spec.diskSizeMb} MB): raise disk_size_mb` : 'check free space in the data dir');
    }
    const hadUpper = await fs.rename(d.upper, old).then(() => true, (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return false;
      throw e;
    });
    await fs.rename(fresh, d.upper);
    await fs.rm(d.work, { recursive: true, force: true });
    await fs.mkdir(d.work, { mode: 0o700 });
    if (hadUpper) await fs.rm(old, { recursive: true, force: true });
  });
  return { state: 'stopped' };
}
