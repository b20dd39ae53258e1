/**
 * Bringing a workspace VM up, on each of its paths; each ends with the
 * identity handshake (identity.ts):
 *   cold:     qcow2 overlay on the base disk, kernel + initramfs boot, the
 *             launcher waits for its identity;
 *   template: the image's template (templates.ts) is restored with
 *             `-incoming`: its disk overlay is copied, its memory loaded;
 *   snapshot: a memory snapshot's stream is restored onto the workspace's
 *             own (restored) disk (snapshots.ts).
 * Every step pushes its undo, so a failed start leaves nothing behind.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostRun, UndoStack } from '../../exec.ts';
import type { SandboxSpec } from '../driver.ts';
import { ensureBaseDisk } from './boot-media/disks.ts';
import { createVmCgroup, removeVmCgroup } from './cgroup.ts';
import { consoleLogFault } from './console.ts';
import { diskFds, type LaunchRecord, type VmContext } from './context.ts';
import { hintFor, MicrovmDriverError, validateSpec, type MicrovmStage } from './errors.ts';
import { IdentityChannel, identityFor, type GuestMessage } from './identity.ts';
import { resumeIncoming } from './migration.ts';
import { killHard, livePid, spawnQemu, tail } from './process.ts';
import { qemuArgv, type QemuLaunch } from './qemu-argv.ts';
import type { Qmp } from './qmp.ts';
import type { TemplateCache } from './templates.ts';

/**
 * Start the workspace's VM once: from a template when one fits (and
 * `useTemplates`), else cold. A failure of a template restore carries the
 * template's dir as `template` so the caller can withdraw it and boot cold.
 */
export async function bootVm(ctx: VmContext, templates: TemplateCache, spec: SandboxSpec, useTemplates: boolean): Promise<void> {
  validateSpec(spec);
  const f = ctx.files(spec);
  const phase = ctx.phases('run');
  if (await livePid(f.pid, ctx.qemuName(spec.workspaceId))) return; // already up: idempotent
  // A dead QEMU's leftovers (crash, reboot) before a new start.
  if (fs.existsSync(ctx.vmRunDir(spec.workspaceId))) await ctx.release(spec, 'run');
  phase('leftover');

  const undo = new UndoStack();
  const fail = async (e: unknown, stage: MicrovmStage): Promise<never> => {
    const failures = await undo.unwind();
    const err = e instanceof MicrovmDriverError ? e : new MicrovmDriverError('run', stage, e instanceof Error ? e.message : String(e), hintFor(stage), { cause: e });
    if (failures.length) err.message += `; cleanup also failed: ${failures.join('; ')}`;
    if (fromTemplate && (stage === 'vmm' || stage === 'agent') && !failures.length) Object.assign(err, { template: fromTemplate });
    throw err;
  };

  let rec: LaunchRecord;
  let base: string;
  try {
    await mkdir(spec.dir, { recursive: true });
    rec = await ctx.launchRecord(spec);
    base = (await ensureBaseDisk(spec.image, spec.diskSizeMb, { artifactsDir: ctx.opts.artifactsDir, log: (l) => ctx.log(l) })).file;
  } catch (e) {
    return fail(e, 'image');
  }
  phase('artifacts');

  // Root disk: first start only. A template restore needs a fresh disk equal to the template's.
  let incoming: string | undefined;
  let fromTemplate: string | undefined;
  const fresh = !fs.existsSync(f.disk);
  if (fresh) {
    try {
      const key = templates.key(rec, base);
      const tpl = ctx.opts.templates === false || !useTemplates ? null : await templates.find(key);
      if (tpl) {
        fromTemplate = tpl;
        const found = await templates.open(tpl);
        rec = found.launch;
        await copyFile(found.disk, f.disk);
        incoming = found.state;
      } else {
        await hostRun('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', f.disk, `${spec.diskSizeMb}M`]);
        if (ctx.opts.templates !== false) templates.schedule(key, spec, rec, base);
      }
      undo.push('disk', () => rm(f.disk, { force: true }));
    } catch (e) {
      return fail(e, 'disk');
    }
  } else {
    try {
      await growVmDisk(f.disk, spec.diskSizeMb);
    } catch (e) {
      return fail(e, 'disk');
    }
  }
  phase(incoming ? 'disk-from-template' : 'disk');

  try {
    undo.push('network', () => ctx.network.detach(spec.slot));
    await ctx.network.prepareTap(spec.slot);
  } catch (e) {
    return fail(e, 'network');
  }
  phase('tap');

  let qmp: Qmp | null = null;
  try {
    const layout = await ctx.layout();
    const cg = await createVmCgroup(layout, ctx.cgroupPath(spec.workspaceId), { memoryMb: rec.memoryMb, cpus: spec.cpus });
    undo.push('cgroup', () => removeVmCgroup(layout, ctx.cgroupPath(spec.workspaceId)));
    await mkdir(f.run, { recursive: true, mode: 0o711 });
    undo.push('run dir', () => rm(f.run, { recursive: true, force: true }));
    await rotate(f.console);
    const launch: QemuLaunch = {
      name: ctx.qemuName(spec.workspaceId), accel: rec.accel, kernel: rec.kernel, initrd: rec.initrd, cmdline: rec.cmdline,
      vcpus: rec.vcpus, memoryMb: rec.memoryMb, rootDisk: f.disk, agentDisk: rec.agentDisk, tap: spec.slot.hostIf, mac: spec.slot.mac,
      qmpSocket: f.qmp, identitySocket: f.identity, consoleLog: f.console, pidFile: f.pid,
      rootDiskFd: 3, rootDiskRoFd: 4,
      ...ctx.runAs(spec.slot.index),
      ...(incoming ? { incomingFd: 5 } : {}),
    };
    const spawned = await spawnQemu(qemuArgv(launch), { logFile: f.qemuLog, qmpSocket: f.qmp, cgroupDirs: cg, fds: diskFds(f.disk), ...(incoming ? { incoming } : {}) });
    qmp = spawned.qmp;
    undo.push('qemu', () => killHard(spawned.pid));
    phase('qemu');
    if (incoming) {
      await resumeIncoming(qmp);
      phase('restored');
    }
  } catch (e) {
    qmp?.close();
    return fail(e, 'vmm');
  }
  qmp.close();

  try {
    // A restored template is up already: if it has not applied its identity in 30 s it never will.
    await sendIdentity(ctx, spec, fromTemplate ? 30_000 : (ctx.opts.bootTimeoutMs ?? 120_000), () => phase('identity-sent'));
    // A restored kernel that faulted may still have answered (see console.ts): such a template is withdrawn.
    const fault = fromTemplate ? await consoleLogFault(f.console) : null;
    if (fault) throw new Error(`the restored guest kernel faulted: ${fault}`);
  } catch (e) {
    return fail(new MicrovmDriverError('run', 'agent', `${(e as Error).message}; console: ${await tail(f.console)}`, 'see console.log and qemu.log in the workspace directory'), 'agent');
  }
  phase('identity');
  undo.commit();
}

/** Start QEMU from a migration stream on the workspace's existing disk (snapshot restore). */
export async function bootFromStream(ctx: VmContext, spec: SandboxSpec, rec: LaunchRecord, state: string): Promise<void> {
  const f = ctx.files(spec);
  const undo = new UndoStack();
  try {
    undo.push('network', () => ctx.network.detach(spec.slot));
    await ctx.network.prepareTap(spec.slot);
    const layout = await ctx.layout();
    const cg = await createVmCgroup(layout, ctx.cgroupPath(spec.workspaceId), { memoryMb: rec.memoryMb, cpus: spec.cpus });
    undo.push('cgroup', () => removeVmCgroup(layout, ctx.cgroupPath(spec.workspaceId)));
    await mkdir(f.run, { recursive: true, mode: 0o711 });
    undo.push('run dir', () => rm(f.run, { recursive: true, force: true }));
    const launch: QemuLaunch = {
      name: ctx.qemuName(spec.workspaceId), accel: rec.accel, kernel: rec.kernel, initrd: rec.initrd, cmdline: rec.cmdline,
      vcpus: rec.vcpus, memoryMb: rec.memoryMb, rootDisk: f.disk, agentDisk: rec.agentDisk, tap: spec.slot.hostIf, mac: spec.slot.mac,
      qmpSocket: f.qmp, identitySocket: f.identity, consoleLog: f.console, pidFile: f.pid, rootDiskFd: 3, rootDiskRoFd: 4, incomingFd: 5,
      ...ctx.runAs(spec.slot.index),
    };
    const spawned = await spawnQemu(qemuArgv(launch), { logFile: f.qemuLog, qmpSocket: f.qmp, cgroupDirs: cg, fds: diskFds(f.disk), incoming: state });
    undo.push('qemu', () => killHard(spawned.pid));
    try {
      await resumeIncoming(spawned.qmp);
    } finally {
      spawned.qmp.close();
    }
    await sendIdentity(ctx, spec, 60_000);
    undo.commit();
  } catch (e) {
    const failures = await undo.unwind();
    throw new MicrovmDriverError('restore', 'vmm', `${(e as Error).message}${failures.length ? `; cleanup also failed: ${failures.join('; ')}` : ''}`, undefined, { cause: e });
  }
}

/** Connect to the identity port, send the workspace's identity, wait until the guest applied it. */
async function sendIdentity(ctx: VmContext, spec: SandboxSpec, timeoutMs: number, onSent?: () => void): Promise<void> {
  const f = ctx.files(spec);
  const ch = await IdentityChannel.connect(f.identity);
  try {
    const id = identityFor(spec, await ctx.nameservers(), Date.now(), randomBytes(48).toString('base64'));
    await ch.send(id);
    onSent?.();
    const r = await ch.wait((m: GuestMessage) => m.t === 'applied' || m.t === 'error', timeoutMs, 'identity applied');
    if (r.t === 'error') throw new Error(`the guest could not apply its identity: ${r.message}`);
    // The guest's own account of the apply (network, host files, agent listening), beside the host's view.
    if (r.t === 'applied' && r.ms !== undefined) ctx.opts.trace?.({ op: 'guest', phase: 'identity-applied', ms: r.ms });
    if (r.t === 'applied') for (const [phase, ms] of Object.entries(r.phases ?? {})) ctx.opts.trace?.({ op: 'guest', phase: `identity-${phase}`, ms });
  } finally {
    ch.close();
  }
}

/**
 * Keep one previous console log, once it has grown past 8 MiB, and start
 * each boot on an empty one (QEMU appends: append=on, so hearthd can cap it
 * while the VM runs; a fault check must not see an earlier boot's lines).
 */
async function rotate(file: string): Promise<void> {
  const size = await stat(file).then((s) => s.size, () => 0);
  if (size > 8 * 1024 * 1024) await rename(file, `${file}.1`);
  await writeFile(file, '', { mode: 0o600 });
}

/**
 * Grow a workspace's qcow2 disk to `sizeMb` (disk_size_mb raised; never
 * shrinks). Done with the VM stopped, so the guest sees the bigger virtio
 * disk at this boot; its file system grows when the guest resizes it. The
 * size is recorded beside the disk, so a start costs a qemu-img call only
 * when the size changed.
 */
export async function growVmDisk(disk: string, sizeMb: number): Promise<boolean> {
  const record = `${disk}.size_mb`;
  const known = Number(await readFile(record, 'utf8').catch(() => '0'));
  if (known >= sizeMb) return false;
  const info = JSON.parse((await hostRun('qemu-img', ['info', '--output=json', '-U', disk])).stdout) as { 'virtual-size': number };
  const grew = info['virtual-size'] < sizeMb * 1024 * 1024;
  if (grew) await hostRun('qemu-img', ['resize', '-q', disk, `${sizeMb}M`]);
  await writeFile(record, String(Math.max(sizeMb, Math.floor(info['virtual-size'] / 1024 / 1024))));
  return grew;
}
