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
 * Boot paths (both end with the identity handshake, identity.ts):
 *   cold:     qcow2 overlay on the base disk, kernel + initramfs boot, the
 *             launcher waits for its identity;
 *   template: the image's template (a VM snapshotted while waiting for an
 *             identity) is restored with `-incoming`: its disk overlay is
 *             copied, its memory loaded, then the identity is sent.
 * Templates: `hearth setup` builds one per image at the default resources;
 * other shapes get one in the background once they have booted cold twice.
 */
import { AGENT_PORT } from '../../../core/agent-protocol.ts';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, realpath, rename, rm, stat, writeFile, chown } from 'node:fs/promises';
import fs from 'node:fs';
import net from 'node:net';
import { join, resolve, sep } from 'node:path';
import { hostRun, UndoStack } from '../../exec.ts';
import { hashKey } from '../../images/hash.ts';
import { shortKey } from '../../images/paths.ts';
import type { AgentDrive } from '../../images/types.ts';
import type { HostNetwork } from '../../network/host-network.ts';
import { cgroupLayout, readStats, type CgroupLayout } from '../container/cgroups.ts';
import { workspaceNameservers } from '../container/oci.ts';
import type {
  Capabilities, Driver, DriverSnapshot, SandboxSpec, SandboxState, SandboxStats, SnapshotRequest, SnapshotSupport,
} from '../driver.ts';
import { ensureVmArtifacts, type VmArtifacts } from './boot-media/artifacts.ts';
import { ensureBaseDisk } from './boot-media/disks.ts';
import { ensureGuestKernel } from './boot-media/kernel.ts';
import { vmPaths } from './boot-media/paths.ts';
import { TEMPLATE_VERSION } from './templates.ts';
import { createVmCgroup, removeVmCgroup } from './cgroup.ts';
import { IdentityChannel, identityFor, type GuestMessage } from './identity.ts';
import { probeKvm, qemuVersion, type KvmProbe } from './probe.ts';
import { consoleLogFault } from './console.ts';
import { killHard, livePid, spawnQemu, tail, waitGone } from './process.ts';
import { QEMU_ARGV_VERSION, kernelCmdline, qemuArgv, tscKhzFromCpuinfo, type Accel, type QemuLaunch } from './qemu-argv.ts';
import { Qmp } from './qmp.ts';

export type MicrovmStage = 'validate' | 'image' | 'disk' | 'network' | 'vmm' | 'agent';

export class MicrovmDriverError extends Error {
  constructor(readonly op: string, readonly stage: MicrovmStage, message: string, readonly hint?: string, options?: { cause?: unknown }) {
    super(`microvm ${op} (${stage}): ${message}`, options);
    this.name = 'MicrovmDriverError';
  }
}

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
const TEMPLATE_UID = VM_UID_BASE - 1;
const TEMPLATE_MAC = '02:48:ff:ff:ff:fe';
const TEMPLATE_SETTLE_MS = 3000;
/** How long a verification restore keeps running after its handshake before its console is read. */
const TEMPLATE_VERIFY_GRACE_MS = 1000;

interface LaunchRecord {
  kernel: string;
  initrd: string;
  agentDisk: string;
  cmdline: string;
  accel: Accel;
  vcpus: number;
  memoryMb: number;
}

export class MicrovmDriver implements Driver {
  readonly name = 'microvm' as const;
  readonly instance: string;
  private readonly network: HostNetwork;
  private artsP: { hash: string; p: Promise<VmArtifacts> } | null = null;
  private probeP: Promise<KvmProbe> | null = null;
  private layoutP: Promise<CgroupLayout> | null = null;
  private dnsP: Promise<string[]> | null = null;
  private readonly building = new Map<string, Promise<string | null>>();
  private buildChain: Promise<unknown> = Promise.resolve();
  private readonly coldBoots = new Map<string, number>();
  /** Shapes whose background build failed all its attempts: not tried again by this hearthd (cold boots still work). */
  private readonly failedBuilds = new Set<string>();

  constructor(private readonly opts: MicrovmDriverOptions) {
    this.network = opts.network;
    this.instance = opts.instance ?? 'default';
  }

  private log(msg: string, fields?: Record<string, unknown>): void {
    this.opts.log?.(msg, fields);
  }

  private phases(op: string): (phase: string) => void {
    const trace = this.opts.trace;
    if (!trace) return () => undefined;
    const t0 = performance.now();
    return (phase) => trace({ op, phase, ms: performance.now() - t0 });
  }

  private tscP: Promise<number | undefined> | null = null;
  private tscKhz(): Promise<number | undefined> {
    return (this.tscP ??= hostTscKhz(this.opts.artifactsDir));
  }

  private layout(): Promise<CgroupLayout> {
    return (this.layoutP ??= cgroupLayout());
  }

  private nameservers(): Promise<string[]> {
    if (this.opts.nameservers) return Promise.resolve(this.opts.nameservers);
    return (this.dnsP ??= readFile('/etc/resolv.conf', 'utf8').catch(() => '').then((t) => workspaceNameservers(t).nameservers));
  }

  cgroupPath(workspaceId: string): string {
    return `/hearth/${this.instance}/vm-${workspaceId}`;
  }

  vmRunDir(workspaceId: string): string {
    return join(this.opts.runDir, 'vm', workspaceId);
  }

  private files(spec: Pick<SandboxSpec, 'workspaceId' | 'dir'>) {
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

  private qemuName(workspaceId: string): string {
    return `hearth-${workspaceId}`;
  }

  // ------------------------------------------------------------------ probe

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

  // ------------------------------------------------------------------ artifacts

  artifacts(agent: AgentDrive): Promise<VmArtifacts> {
    if (this.artsP?.hash !== agent.hash) {
      const p = ensureVmArtifacts(agent, { artifactsDir: this.opts.artifactsDir, offline: true, log: (l) => this.log(l) });
      this.artsP = { hash: agent.hash, p };
      p.catch(() => { if (this.artsP?.p === p) this.artsP = null; });
    }
    return this.artsP.p;
  }

  private async launchRecord(spec: SandboxSpec): Promise<LaunchRecord> {
    const [arts, a] = await Promise.all([this.artifacts(spec.agent), this.accel()]);
    return {
      kernel: arts.kernel.vmlinuz, initrd: arts.initramfs, agentDisk: arts.agentDisk,
      cmdline: kernelCmdline({ accel: a.accel, tscKhz: await this.tscKhz() }), accel: a.accel, vcpus: Math.max(1, Math.ceil(spec.cpus)), memoryMb: spec.memoryMb,
    };
  }

  /**
   * A template restores only into the exact machine it was taken on: the
   * key covers the launch record (kernel, initramfs, agent disk, command
   * line, vCPUs, memory), the base disk, and the whole QEMU argv with the
   * per-VM names blanked (any device change makes a new template).
   */
  private templateKey(rec: LaunchRecord, baseDisk: string): string {
    const argv = qemuArgv({
      name: 'x', accel: rec.accel, kernel: rec.kernel, initrd: rec.initrd, cmdline: rec.cmdline, vcpus: rec.vcpus, memoryMb: rec.memoryMb,
      rootDisk: 'x', agentDisk: rec.agentDisk, tap: 'x', mac: 'x', qmpSocket: 'x', identitySocket: 'x', consoleLog: 'x', pidFile: 'x', rootDiskFd: 3, rootDiskRoFd: 4,
    });
    return hashKey({ v: TEMPLATE_VERSION, argvVersion: QEMU_ARGV_VERSION, ...rec, baseDisk, argv });
  }

  // ------------------------------------------------------------------ run

  async run(spec: SandboxSpec): Promise<void> {
    try {
      await this.runOnce(spec, true);
    } catch (e) {
      const tpl = (e as { template?: string }).template;
      if (!tpl) throw e;
      // A template that does not come back to life is withdrawn (never restored again) and the
      // workspace boots cold: the fast path may fail, the workspace may not.
      this.log('template restore failed; withdrawing the template and booting cold', { template: tpl, error: (e as Error).message });
      await rename(tpl, `${tpl}.bad.${process.pid}.${Date.now()}`).catch(() => undefined);
      await this.runOnce(spec, false);
    }
  }

  private async runOnce(spec: SandboxSpec, useTemplates: boolean): Promise<void> {
    validateSpec(spec);
    const f = this.files(spec);
    const phase = this.phases('run');
    if (await livePid(f.pid, this.qemuName(spec.workspaceId))) return; // already up: idempotent
    await this.cleanupLeftovers(spec);
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
      rec = await this.launchRecord(spec);
      base = (await ensureBaseDisk(spec.image, spec.diskSizeMb, { artifactsDir: this.opts.artifactsDir, log: (l) => this.log(l) })).file;
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
        const key = this.templateKey(rec, base);
        const tpl = this.opts.templates === false || !useTemplates ? null : await this.findTemplate(key);
        if (tpl) {
          fromTemplate = tpl;
          const meta = JSON.parse(await readFile(join(tpl, 'template.json'), 'utf8')) as { launch: LaunchRecord };
          rec = meta.launch;
          await copyFile(join(tpl, 'disk.qcow2'), f.disk);
          incoming = join(tpl, 'state.bin');
        } else {
          await hostRun('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', f.disk, `${spec.diskSizeMb}M`]);
          if (this.opts.templates !== false) this.scheduleTemplate(key, spec, rec, base);
        }
        undo.push('disk', () => rm(f.disk, { force: true }));
      } catch (e) {
        return fail(e, 'disk');
      }
    }
    phase(incoming ? 'disk-from-template' : 'disk');

    try {
      undo.push('network', () => this.network.detach(spec.slot));
      await this.network.prepareTap(spec.slot);
    } catch (e) {
      return fail(e, 'network');
    }
    phase('tap');

    let qmp: Qmp | null = null;
    try {
      const layout = await this.layout();
      const cg = await createVmCgroup(layout, this.cgroupPath(spec.workspaceId), { memoryMb: rec.memoryMb, cpus: spec.cpus });
      undo.push('cgroup', () => removeVmCgroup(layout, this.cgroupPath(spec.workspaceId)));
      await mkdir(f.run, { recursive: true, mode: 0o711 });
      undo.push('run dir', () => rm(f.run, { recursive: true, force: true }));
      await rotate(f.console);
      const launch: QemuLaunch = {
        name: this.qemuName(spec.workspaceId), accel: rec.accel, kernel: rec.kernel, initrd: rec.initrd, cmdline: rec.cmdline,
        vcpus: rec.vcpus, memoryMb: rec.memoryMb, rootDisk: f.disk, agentDisk: rec.agentDisk, tap: spec.slot.hostIf, mac: spec.slot.mac,
        qmpSocket: f.qmp, identitySocket: f.identity, consoleLog: f.console, pidFile: f.pid,
        rootDiskFd: 3, rootDiskRoFd: 4,
        ...(this.opts.unprivileged === false ? {} : { runAs: `${VM_UID_BASE + spec.slot.index}:${VM_UID_BASE + spec.slot.index}` }),
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
      await this.sendIdentity(spec, fromTemplate ? 30_000 : (this.opts.bootTimeoutMs ?? 120_000), () => phase('identity-sent'));
      // A restored kernel that faulted may still have answered (see console.ts): such a template is withdrawn.
      const fault = fromTemplate ? await consoleLogFault(f.console) : null;
      if (fault) throw new Error(`the restored guest kernel faulted: ${fault}`);
    } catch (e) {
      return fail(new MicrovmDriverError('run', 'agent', `${(e as Error).message}; console: ${await tail(f.console)}`, 'see console.log and qemu.log in the workspace directory'), 'agent');
    }
    phase('identity');
    undo.commit();
  }

  /** Connect to the identity port, send the workspace's identity, wait until the guest applied it. */
  private async sendIdentity(spec: SandboxSpec, timeoutMs: number, onSent?: () => void): Promise<void> {
    const f = this.files(spec);
    const ch = await IdentityChannel.connect(f.identity);
    try {
      const id = identityFor(spec, await this.nameservers(), Date.now(), randomBytes(48).toString('base64'));
      await ch.send(id);
      onSent?.();
      const r = await ch.wait((m: GuestMessage) => m.t === 'applied' || m.t === 'error', timeoutMs, 'identity applied');
      if (r.t === 'error') throw new Error(`the guest could not apply its identity: ${r.message}`);
      // The guest's own account of the apply (network, host files, agent listening), beside the host's view.
      if (r.t === 'applied' && r.ms !== undefined) this.opts.trace?.({ op: 'guest', phase: 'identity-applied', ms: r.ms });
      if (r.t === 'applied') for (const [phase, ms] of Object.entries(r.phases ?? {})) this.opts.trace?.({ op: 'guest', phase: `identity-${phase}`, ms });
    } finally {
      ch.close();
    }
  }

  // ------------------------------------------------------------------ templates

  private async findTemplate(key: string): Promise<string | null> {
    const dir = join(vmPaths(this.opts.artifactsDir).templates, shortKey(key));
    return fs.existsSync(join(dir, 'template.json')) ? dir : null;
  }

  /**
   * Build a template in the background once a shape (image, size, vCPUs,
   * memory) has booted cold twice in this hearthd: a one-off shape never
   * pays a template build (TCG boots cost whole seconds of CPU), a shape in
   * use gets the fast path from its third workspace on. `hearth setup`
   * builds the default shape of every image ahead of time.
   */
  private scheduleTemplate(key: string, spec: SandboxSpec, rec: LaunchRecord, base: string): void {
    const seen = (this.coldBoots.get(key) ?? 0) + 1;
    this.coldBoots.set(key, seen);
    if (seen < 2 || this.building.has(key) || this.failedBuilds.has(key)) return;
    const p = this.buildChain.then(() => this.buildTemplate(key, spec, rec, base)).catch((e: Error) => {
      this.failedBuilds.add(key);
      this.log('template build failed; this shape boots cold until hearthd restarts', { image: spec.image.id, error: e.message });
      return null;
    }).finally(() => this.building.delete(key));
    this.buildChain = p;
    this.building.set(key, p);
  }

  /**
   * The template for a workspace spec: found, or built now (boot a VM with
   * no identity, wait for the launcher to say it waits, migrate its state to
   * a file, keep its disk overlay). Returns the template dir.
   */
  async ensureTemplate(spec: SandboxSpec): Promise<string> {
    const rec = await this.launchRecord(spec);
    const base = (await ensureBaseDisk(spec.image, spec.diskSizeMb, { artifactsDir: this.opts.artifactsDir })).file;
    const key = this.templateKey(rec, base);
    const found = await this.findTemplate(key);
    if (found) return found;
    const pending = this.building.get(key);
    if (pending && (await pending)) return (await pending)!;
    return this.buildTemplate(key, spec, rec, base);
  }

  private async buildTemplate(key: string, spec: SandboxSpec, rec: LaunchRecord, base: string): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.buildTemplateOnce(key, spec, rec, base);
      } catch (e) {
        if (attempt >= 3 || !/template verification failed/.test((e as Error).message)) throw e;
        this.log('template failed its verification restore; building it again', { image: spec.image.id, attempt, error: (e as Error).message.slice(0, 300) });
      }
    }
  }

  private async buildTemplateOnce(key: string, spec: SandboxSpec, rec: LaunchRecord, base: string): Promise<string> {
    const vp = vmPaths(this.opts.artifactsDir);
    const final = join(vp.templates, shortKey(key));
    if (fs.existsSync(join(final, 'template.json'))) return final;
    const t0 = Date.now();
    const tag = randomBytes(3).toString('hex');
    await mkdir(vp.tmp, { recursive: true });
    const scratch = join(vp.tmp, `template-${shortKey(key)}.${process.pid}.${tag}`);
    const run = join(this.opts.runDir, 'vm', `tpl-${tag}`);
    await mkdir(scratch, { recursive: true });
    await mkdir(run, { recursive: true, mode: 0o711 });
    let pid: number | null = null;
    try {
      const disk = join(scratch, 'disk.qcow2');
      await hostRun('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', disk, `${spec.diskSizeMb}M`]);
      const launch: QemuLaunch = {
        name: `hearth-template-${tag}`, accel: rec.accel, kernel: rec.kernel, initrd: rec.initrd, cmdline: rec.cmdline,
        vcpus: rec.vcpus, memoryMb: rec.memoryMb, rootDisk: disk, agentDisk: rec.agentDisk,
        // A tap QEMU creates itself (not on any bridge) and that vanishes with it: the template never has a network.
        tap: `hvt${tag}`, mac: TEMPLATE_MAC,
        qmpSocket: join(run, 'qmp.sock'), identitySocket: join(run, 'identity.sock'), consoleLog: join(scratch, 'console.log'), pidFile: join(run, 'qemu.pid'), rootDiskFd: 3, rootDiskRoFd: 4,
        ...(this.opts.unprivileged === false ? {} : { runAs: `${TEMPLATE_UID}:${TEMPLATE_UID}` }),
      };
      const spawned = await spawnQemu(qemuArgv(launch), { logFile: join(scratch, 'qemu.log'), qmpSocket: launch.qmpSocket, cgroupDirs: [], fds: diskFds(disk) });
      pid = spawned.pid;
      const ch = await IdentityChannel.connect(launch.identitySocket);
      try {
        await ch.wait((m) => m.t === 'waiting', this.opts.bootTimeoutMs ?? 120_000, 'the launcher to wait for its identity');
      } catch (e) {
        throw new Error(`${(e as Error).message}; console: ${await tail(launch.consoleLog)}`);
      } finally {
        ch.close();
      }
      // Free page reporting works in 2 MiB blocks after a ~2 s delay: let the memory the launcher freed
      // go back to the host (as zero pages) before the state is written.
      await new Promise((r) => setTimeout(r, TEMPLATE_SETTLE_MS));
      // Stop the vCPUs first: the state is then one instant, copied once. A live migration of the
      // running guest (version 2) relied on TCG's dirty tracking across several passes, and a share of
      // those templates restored into a kernel with a corrupted futex list (an oops within a second).
      await spawned.qmp.execute('stop');
      const bytes = await migrateToFile(spawned.qmp, join(run, 'mig.sock'), join(scratch, 'state.bin'), this.opts.unprivileged === false ? null : TEMPLATE_UID);
      spawned.qmp.close();
      await killHard(pid);
      pid = null;
      await this.verifyTemplate(scratch, launch, run);
      await rm(join(scratch, 'qemu.log'), { force: true });
      await writeFile(join(scratch, 'template.json'), `${JSON.stringify({ version: TEMPLATE_VERSION, key, image: spec.image.id, digest: spec.image.digest, diskSizeMb: spec.diskSizeMb, base, launch: rec, bytes, built_ms: Date.now() - t0, built_at: new Date().toISOString() }, null, 2)}\n`);
      await mkdir(vp.templates, { recursive: true });
      try {
        await rename(scratch, final);
      } catch (e) {
        if (!fs.existsSync(join(final, 'template.json'))) throw e;
      }
      this.log('template built', { image: spec.image.id, key: shortKey(key), ms: Date.now() - t0, state_mb: Math.round(bytes / 1e6) });
      return final;
    } finally {
      if (pid) await killHard(pid).catch(() => undefined);
      await rm(run, { recursive: true, force: true });
      await rm(scratch, { recursive: true, force: true });
    }
  }

  /**
   * Restore a freshly written template once, on a copy of its disk, and
   * require the launcher to apply an identity with a console free of kernel
   * faults. Templates migrated live (version 2) failed this about one time in
   * four under TCG; written from a stopped VM none has (docs/parts/microvm.md).
   * Kept as defence in depth: a faulty template is never published.
   */
  private async verifyTemplate(scratch: string, launch: QemuLaunch, run: string): Promise<void> {
    const disk = join(scratch, 'verify.qcow2');
    await copyFile(join(scratch, 'disk.qcow2'), disk);
    const l: QemuLaunch = {
      ...launch, name: `${launch.name}-verify`, rootDisk: disk, consoleLog: join(scratch, 'verify-console.log'),
      qmpSocket: join(run, 'vqmp.sock'), identitySocket: join(run, 'vid.sock'), pidFile: join(run, 'vqemu.pid'), incomingFd: 5,
    };
    const spawned = await spawnQemu(qemuArgv(l), { logFile: join(scratch, 'verify-qemu.log'), qmpSocket: l.qmpSocket, cgroupDirs: [], fds: diskFds(disk), incoming: join(scratch, 'state.bin') });
    try {
      await resumeIncoming(spawned.qmp);
      const ch = await IdentityChannel.connect(l.identitySocket);
      try {
        // A documentation address on the template's own unbridged tap: nothing is reachable, nothing leaks.
        await ch.send({
          t: 'identity', workspaceId: 'template-verify', hostname: 'template-verify', secret: randomBytes(16).toString('hex'), port: AGENT_PORT,
          ip: '192.0.2.2', prefix: 24, gateway: '192.0.2.1', mac: '02:48:ff:ff:ff:fd', nameservers: [], env: [], workdir: '/', now: Date.now(), seed: randomBytes(32).toString('base64'),
        });
        const r = await ch.wait((m) => m.t === 'applied' || m.t === 'error', 30_000, 'the verification restore to apply an identity');
        if (r.t === 'error') throw new Error(r.message);
      } finally {
        ch.close();
      }
      // The handshake alone is not proof: a guest whose kernel oopsed can still apply an identity.
      await new Promise((r) => setTimeout(r, TEMPLATE_VERIFY_GRACE_MS));
      const fault = await consoleLogFault(l.consoleLog);
      if (fault) throw new Error(`the guest kernel faulted: ${fault}`);
    } catch (e) {
      throw new Error(`template verification failed: ${(e as Error).message}; console: ${await tail(l.consoleLog, 400)}`);
    } finally {
      spawned.qmp.close();
      await killHard(spawned.pid).catch(() => undefined);
      await rm(disk, { force: true });
      await rm(l.consoleLog, { force: true });
      await rm(join(scratch, 'verify-qemu.log'), { force: true });
    }
  }

  // ------------------------------------------------------------------ stop / pause / destroy

  /**
   * Graceful: ask the guest (identity channel `shutdown`: the launcher stops
   * the agent, SIGTERMs everything, syncs, powers off; plus ACPI
   * system_powerdown for guests that listen), wait up to stopTimeoutMs,
   * then SIGKILL. Then release tap, cgroup and run dir. Idempotent.
   */
  async stop(spec: SandboxSpec): Promise<void> {
    const pid = await livePid(this.files(spec).pid, this.qemuName(spec.workspaceId));
    if (pid) {
      const graceful = (await this.vmStatus(spec)) === 'running' && (await this.requestShutdown(spec));
      if (!graceful || !(await waitGone(pid, this.opts.stopTimeoutMs ?? 5000))) await this.kill(pid, 'stop');
    }
    await this.release(spec, 'stop');
  }

  private async requestShutdown(spec: SandboxSpec): Promise<boolean> {
    const f = this.files(spec);
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

  private async kill(pid: number, op: string): Promise<void> {
    try {
      await killHard(pid);
    } catch (e) {
      throw new MicrovmDriverError(op, 'vmm', (e as Error).message, undefined, { cause: e });
    }
  }

  /** Tap, cgroup, run dir: everything of a stopped VM except its disk. */
  private async release(spec: SandboxSpec, op: string): Promise<void> {
    const results = await Promise.allSettled([this.network.detach(spec.slot), this.releaseLocal(spec.workspaceId)]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw new MicrovmDriverError(op, 'network', (failed.reason as Error).message, undefined, { cause: failed.reason });
  }

  /** A dead QEMU's leftovers (crash, reboot) before a new start. */
  private async cleanupLeftovers(spec: SandboxSpec): Promise<void> {
    if (fs.existsSync(this.vmRunDir(spec.workspaceId))) await this.release(spec, 'run');
  }

  private async qmpDo(spec: SandboxSpec, op: string, command: string): Promise<void> {
    try {
      const qmp = await Qmp.connect(this.files(spec).qmp, 3000);
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
    const pid = await livePid(this.files(spec).pid, this.qemuName(spec.workspaceId));
    if (pid) await this.kill(pid, 'destroy');
    await this.release(spec, 'destroy');
    const dir = await this.safeWorkspaceDir(spec.dir);
    if (dir) await rm(dir, { recursive: true, force: true });
  }

  async removeOrphan(workspaceId: string, dir: string): Promise<void> {
    const pid = await livePid(this.files({ workspaceId, dir }).pid, this.qemuName(workspaceId));
    if (pid) await this.kill(pid, 'destroy');
    await this.releaseLocal(workspaceId);
    const safe = await this.safeWorkspaceDir(dir);
    if (safe) await rm(safe, { recursive: true, force: true });
  }

  /** What a VM holds besides its network: its cgroup and run dir. */
  private async releaseLocal(workspaceId: string): Promise<void> {
    await Promise.all([
      this.layout().then((l) => removeVmCgroup(l, this.cgroupPath(workspaceId))),
      rm(this.vmRunDir(workspaceId), { recursive: true, force: true }),
    ]);
  }

  private async vmStatus(spec: SandboxSpec): Promise<string | null> {
    try {
      const qmp = await Qmp.connect(this.files(spec).qmp, 1000);
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
    const pid = await livePid(this.files(spec).pid, this.qemuName(spec.workspaceId));
    if (pid) {
      const s = await this.vmStatus(spec);
      return s === 'paused' || s === 'postmigrate' || s === 'finish-migrate' || s === 'suspended' ? 'paused' : 'running';
    }
    return (await stat(this.files(spec).disk).then(() => true, () => false)) ? 'stopped' : 'missing';
  }

  async stats(spec: SandboxSpec): Promise<SandboxStats | null> {
    return readStats(await this.layout(), this.cgroupPath(spec.workspaceId));
  }

  /** Workspaces with a VM run dir on this host (a live or crashed QEMU). */
  async list(): Promise<string[]> {
    const names = await readdir(join(this.opts.runDir, 'vm')).catch(() => [] as string[]);
    return names.filter((n) => !n.startsWith('tpl-')).sort();
  }

  // ------------------------------------------------------------------ snapshots

  snapshotSupport(): SnapshotSupport {
    return { filesystem: true, memory: true, reason: 'disk overlay (qcow2) plus RAM and device state (QEMU migration stream)' };
  }

  /**
   * vCPUs stop (QEMU flushes the block layer), RAM + device state stream to
   * `state.bin` through a unix socket hearthd serves (QEMU's seccomp sandbox
   * forbids it to spawn `exec:` helpers), the qcow2 overlay is copied, then
   * the VM continues, stays paused, or stays frozen for the caller's stop.
   */
  async snapshot(spec: SandboxSpec, req: SnapshotRequest): Promise<DriverSnapshot> {
    const f = this.files(spec);
    const pid = await livePid(f.pid, this.qemuName(spec.workspaceId));
    const rec = await this.launchRecordOf(spec);
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
        bytes += await migrateToFile(qmp, f.mig, join(req.dir, 'state.bin'), this.opts.unprivileged === false ? null : VM_UID_BASE + spec.slot.index);
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

  /** The launch parameters of the running VM (kept beside its disk at run time). */
  private async launchRecordOf(spec: SandboxSpec): Promise<LaunchRecord> {
    return this.launchRecord(spec);
  }

  /**
   * Called with the VM stopped. Filesystem: the disk overlay is replaced and
   * the VM stays stopped. Memory: the disk is replaced and QEMU starts with
   * `-incoming` from the stream, then gets the (same or new) identity: the
   * guest's processes continue where they were.
   */
  async restoreSnapshot(spec: SandboxSpec, dir: string, snap: Pick<DriverSnapshot, 'format' | 'kinds'>): Promise<{ state: SandboxState }> {
    const f = this.files(spec);
    if (await livePid(f.pid, this.qemuName(spec.workspaceId))) await this.destroyProcessOnly(spec);
    await mkdir(spec.dir, { recursive: true });
    await copyFile(join(dir, 'disk.qcow2'), f.disk);
    if (!snap.kinds.includes('memory')) return { state: 'stopped' };
    const rec = JSON.parse(await readFile(join(dir, 'launch.json'), 'utf8')) as LaunchRecord;
    await this.startFrom(spec, rec, join(dir, 'state.bin'));
    return { state: 'running' };
  }

  private async destroyProcessOnly(spec: SandboxSpec): Promise<void> {
    const pid = await livePid(this.files(spec).pid, this.qemuName(spec.workspaceId));
    if (pid) await this.kill(pid, 'restore');
    await this.release(spec, 'restore');
  }

  /** Start QEMU from a migration stream on the workspace's existing disk (snapshot restore). */
  private async startFrom(spec: SandboxSpec, rec: LaunchRecord, state: string): Promise<void> {
    const f = this.files(spec);
    const undo = new UndoStack();
    try {
      undo.push('network', () => this.network.detach(spec.slot));
      await this.network.prepareTap(spec.slot);
      const layout = await this.layout();
      const cg = await createVmCgroup(layout, this.cgroupPath(spec.workspaceId), { memoryMb: rec.memoryMb, cpus: spec.cpus });
      undo.push('cgroup', () => removeVmCgroup(layout, this.cgroupPath(spec.workspaceId)));
      await mkdir(f.run, { recursive: true, mode: 0o711 });
      undo.push('run dir', () => rm(f.run, { recursive: true, force: true }));
      const launch: QemuLaunch = {
        name: this.qemuName(spec.workspaceId), accel: rec.accel, kernel: rec.kernel, initrd: rec.initrd, cmdline: rec.cmdline,
        vcpus: rec.vcpus, memoryMb: rec.memoryMb, rootDisk: f.disk, agentDisk: rec.agentDisk, tap: spec.slot.hostIf, mac: spec.slot.mac,
        qmpSocket: f.qmp, identitySocket: f.identity, consoleLog: f.console, pidFile: f.pid, rootDiskFd: 3, rootDiskRoFd: 4, incomingFd: 5,
        ...(this.opts.unprivileged === false ? {} : { runAs: `${VM_UID_BASE + spec.slot.index}:${VM_UID_BASE + spec.slot.index}` }),
      };
      const spawned = await spawnQemu(qemuArgv(launch), { logFile: f.qemuLog, qmpSocket: f.qmp, cgroupDirs: cg, fds: diskFds(f.disk), incoming: state });
      undo.push('qemu', () => killHard(spawned.pid));
      try {
        await resumeIncoming(spawned.qmp);
      } finally {
        spawned.qmp.close();
      }
      await this.sendIdentity(spec, 60_000);
      undo.commit();
    } catch (e) {
      const failures = await undo.unwind();
      throw new MicrovmDriverError('restore', 'vmm', `${(e as Error).message}${failures.length ? `; cleanup also failed: ${failures.join('; ')}` : ''}`, undefined, { cause: e });
    }
  }

  /** Remove the empty /hearth/<instance> cgroup parents this driver leaves (tests, uninstall). */
  async teardown(): Promise<void> {
    const layout = await this.layout();
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

/**
 * Stream the (stopped) VM's state to `file`: hearthd listens on a unix
 * socket, QEMU migrates into it. Returns the bytes written.
 */
export async function migrateToFile(qmp: Qmp, sockPath: string, file: string, uid: number | null): Promise<number> {
  await rm(sockPath, { force: true });
  const out = fs.createWriteStream(file, { mode: 0o600 });
  let conns = 0;
  const written = new Promise<void>((resolve, reject) => {
    out.on('finish', resolve);
    out.on('error', reject);
  });
  written.catch(() => undefined); // awaited below; an early failure must not count as unhandled meanwhile
  const server = net.createServer((sock) => {
    conns++;
    // A reset stream (QEMU killed mid-migration) fails this snapshot; unhandled, it would end hearthd.
    sock.on('error', (e) => out.destroy(e));
    sock.pipe(out);
  });
  await new Promise<void>((resolve, reject) => server.listen(sockPath, resolve).once('error', reject));
  try {
    if (uid !== null) await chown(sockPath, uid, uid);
    // QEMU 7.2 caps migration at 128 MiB/s by default: a local file needs no cap.
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 * 1024 * 1024 });
    await qmp.execute('migrate', { uri: `unix:${sockPath}` });
    for (let delay = 5; ; delay = Math.min(delay * 2, 50)) {
      const st = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
      if (st.status === 'completed') break;
      if (st.status === 'failed' || st.status === 'cancelled') throw new Error(`migration ${st.status}: ${st['error-desc'] ?? ''}`);
      await new Promise((r) => setTimeout(r, delay));
    }
    if (!conns) throw new Error('QEMU never connected to the migration socket');
    await written;
    return (await stat(file)).size;
  } finally {
    server.close();
    await rm(sockPath, { force: true });
  }
}

/**
 * Wait for an incoming migration to finish loading, then run the VM: QEMU
 * restores the runstate the source had, and snapshots are taken with the
 * vCPUs stopped, so a restored VM comes up paused until `cont`.
 */
async function resumeIncoming(qmp: Qmp): Promise<void> {
  const status = await qmp.waitStatus((s) => s !== 'inmigrate', 120_000);
  if (status !== 'running') await qmp.execute('cont');
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
function diskFds(disk: string): Array<{ path: string; flags: 'r' | 'r+' }> {
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

async function rotate(file: string): Promise<void> {
  const size = await stat(file).then((s) => s.size, () => 0);
  if (size > 8 * 1024 * 1024) await rename(file, `${file}.1`);
}

function validateSpec(spec: SandboxSpec): void {
  const bad = (m: string) => new MicrovmDriverError('run', 'validate', m);
  if (!(spec.cpus > 0)) throw bad(`cpus must be > 0 (got ${spec.cpus})`);
  if (!Number.isInteger(spec.memoryMb) || spec.memoryMb < 64) throw bad(`memoryMb must be an integer >= 64 (got ${spec.memoryMb})`);
  if (!Number.isInteger(spec.diskSizeMb) || spec.diskSizeMb < 256) throw bad(`diskSizeMb must be an integer >= 256 (got ${spec.diskSizeMb})`);
  if (!spec.image.layers.length) throw bad(`image ${spec.image.id} has no layers`);
  if (!spec.dir.startsWith('/')) throw bad(`spec.dir must be absolute (got ${spec.dir})`);
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(spec.hostname)) throw bad(`hostname ${JSON.stringify(spec.hostname)} is not a valid host name`);
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(spec.workspaceId)) throw bad(`workspace id ${JSON.stringify(spec.workspaceId)}: use [A-Za-z0-9_.-], at most 64`);
}

function hintFor(stage: MicrovmStage): string | undefined {
  switch (stage) {
    case 'image': return 'run `hearth setup` (as root): it fetches the guest kernel and builds the initramfs and disks';
    case 'network': return 'run `hearth doctor`: the bridge and nft table must exist (HostNetwork.ensure)';
    case 'vmm': return 'see qemu.log and console.log in the workspace directory';
    default: return undefined;
  }
}
