/**
 * The microVM driver: every workspace a QEMU `-M microvm` guest with its own
 * kernel, memory and disk, behind the same Driver interface as `container`.
 *
 * Per workspace, on the host:
 *   <spec.dir>/disk.qcow2     root disk: qcow2 overlay on the image's base disk (kept across stop)
 *   <spec.dir>/console.log    the guest's serial console;  qemu.log: QEMU's own stderr
 *   <runDir>/vm/<id>/         qmp.sock, identity.sock, qemu.pid, mig.sock (volatile, tmpfs)
 *   tap <slot.hostIf> on the bridge, with the slot's nft set elements
 *   cgroup /hearth/<instance>/vm-<id> (memory, cpu, pids)
 * Nothing is kept in memory: a restarted hearthd finds the pid file, checks
 * /proc that it is our QEMU, and talks to it over QMP.
 *
 * Boot paths (cold, template, snapshot) are in boot.ts, templates in
 * templates.ts, snapshots in snapshots.ts, what they share in context.ts;
 * this class is the Driver interface over them and the VM's lifecycle
 * after boot (stop, pause, destroy, state).
 * Templates: `hearth setup` builds one per image at the default resources;
 * other shapes get one in the background once they have booted cold twice.
 */
import fs from 'node:fs';
import { readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { join, resolve, sep } from 'node:path';
import type { AgentDrive } from '../../images/types.ts';
import { readStats } from '../container/cgroups.ts';
import type {
  Capabilities, DiskUsage, Driver, DriverSnapshot, SandboxSpec, SandboxState, SandboxStats, SnapshotRequest, SnapshotSupport,
} from '../driver.ts';
import type { VmArtifacts } from './boot-media/artifacts.ts';
import { ensureGuestKernel } from './boot-media/kernel.ts';
import { bootVm, growVmDisk } from './boot.ts';
import { LogCapper } from '../../log-cap.ts';
import { hostRun } from '../../exec.ts';
import { removeVmCgroup } from './cgroup.ts';
import { VmContext, type MicrovmDriverOptions } from './context.ts';
import { MicrovmDriverError } from './errors.ts';
import { qemuVersion, type KvmProbe } from './probe.ts';
import { livePid, waitGone } from './process.ts';
import { Qmp } from './qmp.ts';
import { MICROVM_SNAPSHOT_SUPPORT, restoreVm, snapshotVm } from './snapshots.ts';
import { TemplateCache } from './templates.ts';

// What callers of the driver name besides the class, kept importable from here.
export { VM_UID_BASE, hostTscKhz, type MicrovmDriverOptions } from './context.ts';
export { MicrovmDriverError, type MicrovmStage } from './errors.ts';
export { migrateToFile } from './migration.ts';

export class MicrovmDriver implements Driver {
  readonly name = 'microvm' as const;
  readonly instance: string;
  private readonly ctx: VmContext;
  private readonly templates: TemplateCache;
  /** Keeps running VMs' serial console logs under 8 MiB (log-cap.ts). */
  private readonly logs = new LogCapper();

  constructor(private readonly opts: MicrovmDriverOptions) {
    this.ctx = new VmContext(opts);
    this.templates = new TemplateCache(this.ctx);
    this.instance = this.ctx.instance;
  }

  cgroupPath(workspaceId: string): string {
    return this.ctx.cgroupPath(workspaceId);
  }

  vmRunDir(workspaceId: string): string {
    return this.ctx.vmRunDir(workspaceId);
  }

  // ------------------------------------------------------------------ probe

  /** The accelerator to use (real KVM boot probe, cached). */
  accel(): Promise<KvmProbe> {
    return this.ctx.accel();
  }

  async probe(): Promise<Capabilities> {
    const no = (reason: string, details?: Record<string, unknown>): Capabilities => ({ driver: 'microvm', available: false, reason, details });
    if (process.platform !== 'linux') return no('microVMs need Linux');
    if (process.getuid?.() !== 0) return no('the microvm driver needs root (taps, cgroups): run hearthd as root');
    let qemu: string;
    try {
      qemu = await qemuVersion();
    } catch (e) {
      return no(`qemu-system-x86_64 does not run: ${(e as Error).message}`, { hint: 'apt-get install qemu-system-x86 qemu-utils (hearth setup does it)' });
    }
    try {
      await ensureGuestKernel({ artifactsDir: this.opts.artifactsDir, offline: true });
    } catch (e) {
      return no(`${(e as Error).message}`, { qemu, hint: 'run `hearth setup` (as root) to fetch the guest kernel' });
    }
    if (!fs.existsSync('/dev/net/tun')) return no('/dev/net/tun is missing (modprobe tun)', { qemu });
    const a = await this.accel();
    return { driver: 'microvm', available: true, reason: `QEMU ${qemu} microvm, ${a.accel.toUpperCase()}: ${a.reason}`, details: { qemu, accel: a.accel, probe: a.reason } };
  }

  artifacts(agent: AgentDrive): Promise<VmArtifacts> {
    return this.ctx.artifacts(agent);
  }

  // ------------------------------------------------------------------ run

  async run(spec: SandboxSpec): Promise<void> {
    await this.boot(spec);
    // The serial console is capped while the VM runs (the guest's root can write it as fast as QEMU emulates).
    this.logs.watch(this.ctx.files(spec).console);
  }

  private async boot(spec: SandboxSpec): Promise<void> {
    try {
      await bootVm(this.ctx, this.templates, spec, true);
    } catch (e) {
      const tpl = (e as { template?: string }).template;
      if (!tpl) throw e;
      // A template that does not come back to life is withdrawn (never restored again) and the
      // workspace boots cold: the fast path may fail, the workspace may not.
      this.ctx.log('template restore failed; withdrawing the template and booting cold', { template: tpl, error: (e as Error).message });
      await rename(tpl, `${tpl}.bad.${process.pid}.${Date.now()}`).catch(() => undefined);
      await bootVm(this.ctx, this.templates, spec, false);
    }
  }

  /** The template for a workspace spec: found, or built now (templates.ts). Returns the template dir. */
  ensureTemplate(spec: SandboxSpec): Promise<string> {
    return this.templates.ensure(spec);
  }

  /**
   * disk_size_mb raised: a stopped VM's qcow2 grows now, a running one's at
   * its next boot (the guest sees the bigger disk then).
   */
  async resizeDisk(spec: SandboxSpec): Promise<'grown' | 'next-start' | 'unchanged'> {
    const f = this.ctx.files(spec);
    if (!fs.existsSync(f.disk) || (await livePid(f.pid, this.ctx.qemuName(spec.workspaceId)))) return 'next-start';
    await growVmDisk(f.disk, spec.diskSizeMb);
    return 'next-start';
  }

  /**
   * The qcow2 overlay's allocation: what the guest has written over its
   * image (the guest's own file system is not read from the host). -U: the
   * image may be open by a running QEMU.
   */
  async diskUsage(spec: SandboxSpec): Promise<DiskUsage> {
    const f = this.ctx.files(spec);
    const total = spec.diskSizeMb * 1024 * 1024;
    let used = 0;
    if (fs.existsSync(f.disk)) {
      const { stdout } = await hostRun('qemu-img', ['info', '-U', '--output=json', f.disk], { timeoutMs: 30_000 });
      used = Number((JSON.parse(stdout) as { 'actual-size'?: number })['actual-size'] ?? 0);
    }
    const free = Math.max(0, total - used);
    return {
      size_mb: spec.diskSizeMb, total_bytes: total, used_bytes: used, free_bytes: free,
      used_mb: Math.round((used / 1048576) * 10) / 10, free_mb: Math.round((free / 1048576) * 10) / 10,
      used_percent: total > 0 ? Math.round((used / total) * 1000) / 10 : 0, inodes_total: 0, inodes_used: 0,
      source: fs.existsSync(f.disk) ? 'qcow2' : 'none', pending_size_mb: null,
    };
  }

  // ------------------------------------------------------------------ stop / pause / destroy

  /**
   * Graceful: ask the guest (identity channel `shutdown`: the launcher stops
   * the agent, SIGTERMs everything, syncs, powers off; plus ACPI
   * system_powerdown for guests that listen), wait up to stopTimeoutMs,
   * then SIGKILL. Then release tap, cgroup and run dir. Idempotent.
   */
  async stop(spec: SandboxSpec): Promise<void> {
    this.logs.unwatch(this.ctx.files(spec).console);
    const pid = await livePid(this.ctx.files(spec).pid, this.ctx.qemuName(spec.workspaceId));
    if (pid) {
      const graceful = (await this.vmStatus(spec)) === 'running' && (await this.requestShutdown(spec));
      if (!graceful || !(await waitGone(pid, this.opts.stopTimeoutMs ?? 5000))) await this.ctx.kill(pid, 'stop');
    }
    await this.ctx.release(spec, 'stop');
  }

  private async requestShutdown(spec: SandboxSpec): Promise<boolean> {
    const f = this.ctx.files(spec);
    try {
      const qmp = await Qmp.connect(f.qmp, 1000);
      await qmp.execute('system_powerdown').catch(() => undefined);
      qmp.close();
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(f.identity, () => s.end(`${JSON.stringify({ t: 'shutdown' })}\n`, () => resolve()));
        s.on('error', reject);
        // Keep the connection until QEMU has read the line.
        setTimeout(() => s.destroy(), 2000).unref();
      });
      return true;
    } catch {
      return false;
    }
  }

  private async qmpDo(spec: SandboxSpec, op: string, command: string): Promise<void> {
    try {
      const qmp = await Qmp.connect(this.ctx.files(spec).qmp, 3000);
      try {
        await qmp.execute(command);
      } finally {
        qmp.close();
      }
    } catch (e) {
      throw new MicrovmDriverError(op, 'vmm', (e as Error).message, 'is the VM running? (hearth doctor; console.log in the workspace dir)', { cause: e });
    }
  }

  /** Stop the vCPUs (QMP stop): the guest's clock and processes freeze; memory stays. */
  pause(spec: SandboxSpec): Promise<void> {
    return this.qmpDo(spec, 'pause', 'stop');
  }

  resume(spec: SandboxSpec): Promise<void> {
    return this.qmpDo(spec, 'resume', 'cont');
  }

  /** Hard kill (the disk is thrown away, nothing to flush), release, delete spec.dir. Idempotent. */
  async destroy(spec: SandboxSpec): Promise<void> {
    this.logs.unwatch(this.ctx.files(spec).console);
    const pid = await livePid(this.ctx.files(spec).pid, this.ctx.qemuName(spec.workspaceId));
    if (pid) await this.ctx.kill(pid, 'destroy');
    await this.ctx.release(spec, 'destroy');
    const dir = await this.safeWorkspaceDir(spec.dir);
    if (dir) await rm(dir, { recursive: true, force: true });
  }

  async removeOrphan(workspaceId: string, dir: string): Promise<void> {
    this.logs.unwatch(this.ctx.files({ workspaceId, dir }).console);
    const pid = await livePid(this.ctx.files({ workspaceId, dir }).pid, this.ctx.qemuName(workspaceId));
    if (pid) await this.ctx.kill(pid, 'destroy');
    await this.ctx.releaseLocal(workspaceId);
    const safe = await this.safeWorkspaceDir(dir);
    if (safe) await rm(safe, { recursive: true, force: true });
  }

  private async vmStatus(spec: SandboxSpec): Promise<string | null> {
    try {
      const qmp = await Qmp.connect(this.ctx.files(spec).qmp, 1000);
      try {
        return (await qmp.execute<{ status: string }>('query-status')).status;
      } finally {
        qmp.close();
      }
    } catch {
      return null;
    }
  }

  /** A QEMU that exited on its own (guest panic, poweroff, crash) is 'stopped': the pid file no longer names a live QEMU. */
  async state(spec: SandboxSpec): Promise<SandboxState> {
    const pid = await livePid(this.ctx.files(spec).pid, this.ctx.qemuName(spec.workspaceId));
    if (pid) {
      const s = await this.vmStatus(spec);
      return s === 'paused' || s === 'postmigrate' || s === 'finish-migrate' || s === 'suspended' ? 'paused' : 'running';
    }
    return (await stat(this.ctx.files(spec).disk).then(() => true, () => false)) ? 'stopped' : 'missing';
  }

  async stats(spec: SandboxSpec): Promise<SandboxStats | null> {
    return readStats(await this.ctx.layout(), this.ctx.cgroupPath(spec.workspaceId));
  }

  /** Workspaces with a VM run dir on this host (a live or crashed QEMU). */
  async list(): Promise<string[]> {
    const names = await readdir(join(this.opts.runDir, 'vm')).catch(() => [] as string[]);
    const ids = names.filter((n) => !n.startsWith('tpl-')).sort();
    // A restarted hearthd finds its VMs here (reconcile): their serial logs are capped from now on.
    for (const id of ids) if (/^[A-Za-z0-9_.-]+$/.test(id) && id !== '.' && id !== '..') this.logs.watch(this.ctx.files({ workspaceId: id, dir: join(this.opts.workspacesRoot, id) }).console);
    return ids;
  }

  // ------------------------------------------------------------------ snapshots (snapshots.ts)

  snapshotSupport(): SnapshotSupport {
    return MICROVM_SNAPSHOT_SUPPORT;
  }

  snapshot(spec: SandboxSpec, req: SnapshotRequest): Promise<DriverSnapshot> {
    return snapshotVm(this.ctx, spec, req);
  }

  restoreSnapshot(spec: SandboxSpec, dir: string, snap: Pick<DriverSnapshot, 'format' | 'kinds'>): Promise<{ state: SandboxState }> {
    return restoreVm(this.ctx, spec, dir, snap);
  }

  /** Remove the empty /hearth/<instance> cgroup parents this driver leaves (tests, uninstall). */
  async teardown(): Promise<void> {
    const layout = await this.ctx.layout();
    await removeVmCgroup(layout, `/hearth/${this.instance}`).catch(() => undefined);
  }

  private async safeWorkspaceDir(dir: string): Promise<string | null> {
    const root = await realpath(this.opts.workspacesRoot).catch(() => resolve(this.opts.workspacesRoot));
    const real = await realpath(dir).catch(() => null);
    if (real === null) return null;
    if (!real.startsWith(root + sep) || real.length <= root.length + 1) {
      throw new MicrovmDriverError('destroy', 'validate', `refusing to delete ${dir}: not inside the workspaces root ${root}`);
    }
    return real;
  }
}
