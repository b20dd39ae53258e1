/**
 * What every part of the microVM driver shares: its options, the names and
 * files of a workspace's VM, the host facts it probes once (accelerator,
 * cgroup layout, nameservers, TSC rate), the boot artifacts, and the
 * release of what a VM holds. The driver (driver.ts), the boot paths
 * (boot.ts), templates (templates.ts) and snapshots (snapshots.ts) each
 * take one VmContext, so none of them needs the others' state.
 */
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostNetwork } from '../../network/host-network.ts';
import type { AgentDrive } from '../../images/types.ts';
import { cgroupLayout, type CgroupLayout } from '../container/cgroups.ts';
import { workspaceNameservers } from '../container/oci.ts';
import type { SandboxSpec } from '../driver.ts';
import { ensureVmArtifacts, type VmArtifacts } from './boot-media/artifacts.ts';
import { ensureGuestKernel } from './boot-media/kernel.ts';
import { vmPaths } from './boot-media/paths.ts';
import { removeVmCgroup } from './cgroup.ts';
import { MicrovmDriverError } from './errors.ts';
import { probeKvm, qemuVersion, type KvmProbe } from './probe.ts';
import { killHard } from './process.ts';
import { kernelCmdline, tscKhzFromCpuinfo, type Accel } from './qemu-argv.ts';

export interface MicrovmDriverOptions {
  network: HostNetwork;
  /** Volatile state (sockets, pid files). Prefer a tmpfs (/run/hearth/...). */
  runDir: string;
  /** destroy() deletes spec.dir only when it lies strictly inside this directory. */
  workspacesRoot: string;
  /** Distinguishes Hearth instances sharing a host (cgroups /hearth/<instance>/vm-<id>). */
  instance?: string;
  artifactsDir?: string;
  /** Restore workspaces from per-image templates (default true). */
  templates?: boolean;
  /** Run QEMU as a per-slot unprivileged uid after it opened its devices (default true). */
  unprivileged?: boolean;
  /** Force an accelerator (tests, bench); default: the boot probe decides. */
  accel?: Accel;
  nameservers?: string[];
  /** Graceful stop bound before the hard kill. Default 5 s. */
  stopTimeoutMs?: number;
  /** How long a cold boot may take to an applied identity. Default 120 s (TCG on a busy 2-core host). */
  bootTimeoutMs?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  trace?: (event: { op: string; phase: string; ms: number }) => void;
}

/** uid QEMU drops to: base + slot index (a VM cannot signal or ptrace another VM's QEMU). */
export const VM_UID_BASE = 1_500_000;

/** The host uids QEMU may run as on a network of `slots` slots (one per slot; the firewall gives them no sockets). */
export function vmUidRange(slots: number): { first: number; last: number } {
  return { first: VM_UID_BASE, last: VM_UID_BASE + Math.max(0, slots) };
}

/** How a VM was launched: what a template or a memory snapshot must be restored into. */
export interface LaunchRecord {
  kernel: string;
  initrd: string;
  agentDisk: string;
  cmdline: string;
  accel: Accel;
  vcpus: number;
  memoryMb: number;
}

/** A workspace VM's files: volatile ones in its run dir, lasting ones beside its disk. */
export interface VmFiles {
  run: string;
  qmp: string;
  identity: string;
  pid: string;
  mig: string;
  disk: string;
  console: string;
  qemuLog: string;
}

export class VmContext {
  readonly instance: string;
  readonly network: HostNetwork;
  private artsP: { hash: string; p: Promise<VmArtifacts> } | null = null;
  private probeP: Promise<KvmProbe> | null = null;
  private layoutP: Promise<CgroupLayout> | null = null;
  private dnsP: Promise<string[]> | null = null;
  private tscP: Promise<number | undefined> | null = null;

  constructor(readonly opts: MicrovmDriverOptions) {
    this.network = opts.network;
    this.instance = opts.instance ?? 'default';
  }

  log(msg: string, fields?: Record<string, unknown>): void {
    this.opts.log?.(msg, fields);
  }

  phases(op: string): (phase: string) => void {
    const trace = this.opts.trace;
    if (!trace) return () => undefined;
    const t0 = performance.now();
    return (phase) => trace({ op, phase, ms: performance.now() - t0 });
  }

  tscKhz(): Promise<number | undefined> {
    return (this.tscP ??= hostTscKhz(this.opts.artifactsDir));
  }

  layout(): Promise<CgroupLayout> {
    return (this.layoutP ??= cgroupLayout());
  }

  nameservers(): Promise<string[]> {
    if (this.opts.nameservers) return Promise.resolve(this.opts.nameservers);
    return (this.dnsP ??= readFile('/etc/resolv.conf', 'utf8').catch(() => '').then((t) => workspaceNameservers(t).nameservers));
  }

  cgroupPath(workspaceId: string): string {
    return `/hearth/${this.instance}/vm-${workspaceId}`;
  }

  vmRunDir(workspaceId: string): string {
    return join(this.opts.runDir, 'vm', workspaceId);
  }

  files(spec: Pick<SandboxSpec, 'workspaceId' | 'dir'>): VmFiles {
    const run = this.vmRunDir(spec.workspaceId);
    return {
      run,
      qmp: join(run, 'qmp.sock'),
      identity: join(run, 'identity.sock'),
      pid: join(run, 'qemu.pid'),
      mig: join(run, 'mig.sock'),
      disk: join(spec.dir, 'disk.qcow2'),
      console: join(spec.dir, 'console.log'),
      qemuLog: join(spec.dir, 'qemu.log'),
    };
  }

  qemuName(workspaceId: string): string {
    return `hearth-${workspaceId}`;
  }

  /** The `runAs` of a workspace's QEMU (absent when QEMU stays root). */
  runAs(slotIndex: number): { runAs?: string } {
    return this.opts.unprivileged === false ? {} : { runAs: `${VM_UID_BASE + slotIndex}:${VM_UID_BASE + slotIndex}` };
  }

  /** The accelerator to use (real KVM boot probe, cached). */
  accel(): Promise<KvmProbe> {
    if (this.opts.accel) return Promise.resolve({ accel: this.opts.accel, reason: `${this.opts.accel} (forced)` });
    return (this.probeP ??= (async () => {
      const kernel = await ensureGuestKernel({ artifactsDir: this.opts.artifactsDir, offline: true });
      const init = await newestInitramfs(vmPaths(this.opts.artifactsDir).initramfs);
      if (!init) return { accel: 'tcg' as const, reason: 'no initramfs built yet: TCG until `hearth setup` has run' };
      // Cached host-wide (the verdict is a property of the host, not of one hearthd).
      return probeKvm({ kernel: kernel.vmlinuz, initrd: init, runDir: '/run/hearth', qemu: await qemuVersion() });
    })());
  }

  artifacts(agent: AgentDrive): Promise<VmArtifacts> {
    if (this.artsP?.hash !== agent.hash) {
      const p = ensureVmArtifacts(agent, { artifactsDir: this.opts.artifactsDir, offline: true, log: (l) => this.log(l) });
      this.artsP = { hash: agent.hash, p };
      p.catch(() => { if (this.artsP?.p === p) this.artsP = null; });
    }
    return this.artsP.p;
  }

  async launchRecord(spec: SandboxSpec): Promise<LaunchRecord> {
    const [arts, a] = await Promise.all([this.artifacts(spec.agent), this.accel()]);
    return {
      kernel: arts.kernel.vmlinuz, initrd: arts.initramfs, agentDisk: arts.agentDisk,
      cmdline: kernelCmdline({ accel: a.accel, tscKhz: await this.tscKhz() }), accel: a.accel, vcpus: Math.max(1, Math.ceil(spec.cpus)), memoryMb: spec.memoryMb,
    };
  }

  async kill(pid: number, op: string): Promise<void> {
    try {
      await killHard(pid);
    } catch (e) {
      throw new MicrovmDriverError(op, 'vmm', (e as Error).message, undefined, { cause: e });
    }
  }

  /** Tap, cgroup, run dir: everything of a stopped VM except its disk. */
  async release(spec: SandboxSpec, op: string): Promise<void> {
    const results = await Promise.allSettled([this.network.detach(spec.slot), this.releaseLocal(spec.workspaceId)]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw new MicrovmDriverError(op, 'network', (failed.reason as Error).message, undefined, { cause: failed.reason });
  }

  /** What a VM holds besides its network: its cgroup and run dir. */
  async releaseLocal(workspaceId: string): Promise<void> {
    await Promise.all([
      this.layout().then((l) => removeVmCgroup(l, this.cgroupPath(workspaceId))),
      rm(this.vmRunDir(workspaceId), { recursive: true, force: true }),
    ]);
  }
}

/** The host TSC rate, measured once per artifacts dir so kernel command lines (template keys) stay stable. */
export async function hostTscKhz(artifactsDir?: string): Promise<number | undefined> {
  const file = join(vmPaths(artifactsDir).root, 'host-tsc-khz');
  const saved = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  if (saved > 0) return saved;
  const khz = tscKhzFromCpuinfo(await readFile('/proc/cpuinfo', 'utf8').catch(() => ''));
  if (khz) {
    await mkdir(vmPaths(artifactsDir).root, { recursive: true });
    await writeFile(file, `${khz}\n`).catch(() => undefined);
  }
  return khz;
}

/** The root disk as fds 3 (read-write) and 4 (read-only), matching rootDiskFd/rootDiskRoFd. */
export function diskFds(disk: string): Array<{ path: string; flags: 'r' | 'r+' }> {
  return [{ path: disk, flags: 'r+' }, { path: disk, flags: 'r' }];
}

async function newestInitramfs(dir: string): Promise<string | null> {
  const names = await readdir(dir).catch(() => [] as string[]);
  let best: { p: string; t: number } | null = null;
  for (const n of names.filter((x) => x.endsWith('.cpio'))) {
    const t = (await stat(join(dir, n))).mtimeMs;
    if (!best || t > best.t) best = { p: join(dir, n), t };
  }
  return best?.p ?? null;
}
