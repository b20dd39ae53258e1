/**
 * MicroVM snapshots: the qcow2 disk overlay, plus RAM and device state
 * (QEMU's migration stream, migration.ts) when memory is asked for. A
 * memory snapshot restores the guest's processes where they were; a
 * file-system one restores the disk into a stopped VM.
 */
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DriverSnapshot, SandboxSpec, SandboxState, SnapshotRequest, SnapshotSupport } from '../driver.ts';
import { bootFromStream } from './boot.ts';
import { VM_UID_BASE, type LaunchRecord, type VmContext } from './context.ts';
import { migrateToFile } from './migration.ts';
import { livePid } from './process.ts';
import { Qmp } from './qmp.ts';

export const MICROVM_SNAPSHOT_SUPPORT: SnapshotSupport = { filesystem: true, memory: true, reason: 'disk overlay (qcow2) plus RAM and device state (QEMU migration stream)' };

/**
 * vCPUs stop (QEMU flushes the block layer), RAM + device state stream to
 * `state.bin` through a unix socket hearthd serves (QEMU's seccomp sandbox
 * forbids it to spawn `exec:` helpers), the qcow2 overlay is copied, then
 * the VM continues, stays paused, or stays frozen for the caller's stop.
 */
export async function snapshotVm(ctx: VmContext, spec: SandboxSpec, req: SnapshotRequest): Promise<DriverSnapshot> {
  const f = ctx.files(spec);
  const pid = await livePid(f.pid, ctx.qemuName(spec.workspaceId));
  // The launch parameters of the running VM, kept beside its memory: a restore starts the same machine.
  const rec = await ctx.launchRecord(spec);
  let bytes = 0;
  if (!pid) {
    await copyFile(f.disk, join(req.dir, 'disk.qcow2'));
    bytes = (await stat(join(req.dir, 'disk.qcow2'))).size;
    return { kinds: ['filesystem'], format: 'microvm-qcow2', bytes, state: 'stopped' };
  }
  const qmp = await Qmp.connect(f.qmp, 3000);
  try {
    await qmp.execute('stop');
    if (req.memory) {
      bytes += await migrateToFile(qmp, f.mig, join(req.dir, 'state.bin'), ctx.opts.unprivileged === false ? null : VM_UID_BASE + spec.slot.index);
      await writeFile(join(req.dir, 'launch.json'), JSON.stringify(rec));
    }
    await copyFile(f.disk, join(req.dir, 'disk.qcow2'));
    bytes += (await stat(join(req.dir, 'disk.qcow2'))).size;
    if (req.after === 'resume') await qmp.execute('cont');
  } finally {
    qmp.close();
  }
  return { kinds: req.memory ? ['filesystem', 'memory'] : ['filesystem'], format: req.memory ? 'microvm-qcow2+migration' : 'microvm-qcow2', bytes, state: req.after === 'resume' ? 'running' : 'paused' };
}

/**
 * Called with the VM stopped. Filesystem: the disk overlay is replaced and
 * the VM stays stopped. Memory: the disk is replaced and QEMU starts with
 * `-incoming` from the stream, then gets the (same or new) identity: the
 * guest's processes continue where they were.
 */
export async function restoreVm(ctx: VmContext, spec: SandboxSpec, dir: string, snap: Pick<DriverSnapshot, 'format' | 'kinds'>): Promise<{ state: SandboxState }> {
  const f = ctx.files(spec);
  if (await livePid(f.pid, ctx.qemuName(spec.workspaceId))) await destroyProcessOnly(ctx, spec);
  await mkdir(spec.dir, { recursive: true });
  await copyFile(join(dir, 'disk.qcow2'), f.disk);
  if (!snap.kinds.includes('memory')) return { state: 'stopped' };
  const rec = JSON.parse(await readFile(join(dir, 'launch.json'), 'utf8')) as LaunchRecord;
  await bootFromStream(ctx, spec, rec, join(dir, 'state.bin'));
  return { state: 'running' };
}

async function destroyProcessOnly(ctx: VmContext, spec: SandboxSpec): Promise<void> {
  const pid = await livePid(ctx.files(spec).pid, ctx.qemuName(spec.workspaceId));
  if (pid) await ctx.kill(pid, 'restore');
  await ctx.release(spec, 'restore');
}
