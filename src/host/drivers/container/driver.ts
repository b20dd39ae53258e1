/**
 * The container driver: runc (OCI) sandboxes on an overlay rootfs, joined to
 * a network namespace made by HostNetwork.
 *
 * Nothing about a running workspace is kept in memory. Everything is derived
 * from the host: runc's state root (`<runDir>/runc`), the pid file runc
 * writes (`<runDir>/pids/<id>.pid`), /proc/self/mountinfo, the workspace's
 * cgroup and the network namespace named after its slot. So a restarted
 * hearthd can stop, inspect and destroy what an earlier one started.
 *
 * Per workspace, on the host:
 *   <spec.dir>/disk.img       the workspace's disk: a sparse ext4 image of disk_size_mb (disk.ts)
 *   <spec.dir>/disk           its mountpoint while running; holds upper/ and work/, overlay's
 *                             writable layer (created once, kept across stop/start)
 *   <spec.dir>/rootfs         overlay mountpoint while running
 *   <spec.dir>/config.json    the OCI bundle config (the bundle dir is spec.dir)
 *   <spec.dir>/hostname, hosts, resolv.conf   bound into /etc
 *   <spec.dir>/disk/console.log  stdout+stderr of the workspace's PID 1 while it runs: on the
 *                             workspace's own disk, so even a writer faster than hearthd's cap
 *                             (root inside can write it through /proc/1/fd/1) fills only its
 *                             own disk; kept under 8 MiB (one previous generation in .1: log-cap.ts)
 *   <spec.dir>/console.log    its last 8 MiB, copied out at stop (readable while stopped)
 *   <spec.dir>/runc.log       runc's own JSON log (errors of the last start)
 *   cgroups /hearth/<instance>/<workspaceId> in every hierarchy
 *   netns /run/netns/<slot.hostIf>, veth <slot.hostIf> on the bridge
 */
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { hostRun, UndoStack } from '../../exec.ts';
import type { HostNetwork } from '../../network/host-network.ts';
import type { Capabilities, DiskUsage, Driver, OverlayListing, SandboxSpec, SandboxState, SandboxStats } from '../driver.ts';
import { cgroupDirs, cgroupLayout, readStats, removeEmptyParents, type CgroupLayout } from './cgroups.ts';
import { isMountpoint, mountOverlay, mountsUnder, unmount } from './mounts.ts';
import { diskPaths, ensureDisk, growDisk, hasDisk, MIN_DISK_MB, unmountDisk } from './disk.ts';
import { CPU_PERIOD_US, DEFAULT_CPU_SHARES, NOFILE_LIMIT, ociConfig, renderHostname, renderHosts, renderResolvConf, workspaceNameservers } from './oci.ts';
import { RUNC_ID_RE, Runc } from './runc.ts';
import { containerDiskUsage, overlayFiles, syncContainerDisk } from './disk-usage.ts';
import { CONTAINER_SNAPSHOT_SUPPORT, restoreContainer, snapshotContainer } from './snapshots.ts';
import type { DriverSnapshot, SnapshotRequest, SnapshotSupport } from '../driver.ts';
import { DEFAULT_LOG_CAP_BYTES, keepTail, LogCapper } from '../../log-cap.ts';

export type ContainerStage = 'validate' | 'disk' | 'network' | 'vmm';

/** A container driver failure, with the stage it happened in and what to do next. */
export class ContainerDriverError extends Error {
  constructor(
    readonly op: 'run' | 'stop' | 'pause' | 'resume' | 'destroy' | 'state' | 'stats' | 'list' | 'teardown',
    readonly stage: ContainerStage,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(`container ${op} (${stage}): ${message}`, options);
    this.name = 'ContainerDriverError';
  }
}

/** The driver also honours this optional field until SandboxSpec carries network policy. */
export type ContainerSandboxSpec = SandboxSpec & { allowInternet?: boolean };

export interface ContainerDriverOptions {
  network: HostNetwork;
  /** Volatile state: runc root (`<runDir>/runc`) and pid files. Prefer a tmpfs (/run/hearth). */
  runDir: string;
  /** destroy() deletes spec.dir only when it lies strictly inside this directory. */
  workspacesRoot: string;
  /** Distinguishes Hearth instances (tests) sharing a host: cgroups live under /hearth/<instance>/. */
  instance?: string;
  runcPath?: string;
  /** Nameservers for /etc/resolv.conf. Default: the host's non-loopback ones, else public resolvers. */
  nameservers?: string[];
  searchDomains?: string[];
  /** How long stop waits for the container's init to disappear after SIGKILL. Default 10 s. */
  stopTimeoutMs?: number;
  /** The console log's cap in bytes (rotated to console.log.1 past it). Default 8 MiB. */
  consoleLogCapBytes?: number;
  /** Called as each phase of run/stop completes, with ms since the operation began (bench/). */
  trace?: (event: { op: string; phase: string; ms: number }) => void;
}

const CONTAINER_PREFIX = 'hth-';

/** The runc container id of a workspace. */
export function containerId(workspaceId: string): string {
  const id = `${CONTAINER_PREFIX}${workspaceId}`;
  if (!workspaceId || !RUNC_ID_RE.test(id) || id.length > 128) throw new ContainerDriverError('run', 'validate', `workspace id ${JSON.stringify(workspaceId)} cannot name a runc container (want [A-Za-z0-9_+.-], at most 124 characters)`);
  return id;
}

export class ContainerDriver implements Driver {
  readonly name = 'container' as const;
  readonly runc: Runc;
  readonly instance: string;
  private readonly network: HostNetwork;
  private layoutP: Promise<CgroupLayout> | null = null;
  private dnsP: Promise<{ nameservers: string[]; search: string[] }> | null = null;
  private nofileP: Promise<number> | null = null;
  /** Keeps running workspaces' console logs under their cap. */
  readonly logs: LogCapper;

  constructor(private readonly opts: ContainerDriverOptions) {
    this.network = opts.network;
    this.instance = opts.instance ?? 'default';
    if (!/^[A-Za-z0-9_.-]+$/.test(this.instance)) throw new Error(`container driver instance ${JSON.stringify(this.instance)}: use [A-Za-z0-9_.-]`);
    this.runc = new Runc(join(opts.runDir, 'runc'), opts.runcPath ?? 'runc');
    this.logs = new LogCapper(opts.consoleLogCapBytes ?? DEFAULT_LOG_CAP_BYTES);
  }

  /** The cgroup path of a workspace (absolute in every hierarchy). */
  cgroupsPath(workspaceId: string): string {
    return `/hearth/${this.instance}/${workspaceId}`;
  }

  /** The cgroup directories this workspace has (or would have) on this host. */
  async cgroupDirs(workspaceId: string): Promise<string[]> {
    return cgroupDirs(await this.layout(), this.cgroupsPath(workspaceId));
  }

  private pidFile(id: string): string {
    return join(this.opts.runDir, 'pids', `${id}.pid`);
  }

  private layout(): Promise<CgroupLayout> {
    return (this.layoutP ??= cgroupLayout());
  }

  private dns(): Promise<{ nameservers: string[]; search: string[] }> {
    if (this.opts.nameservers) return Promise.resolve({ nameservers: this.opts.nameservers, search: this.opts.searchDomains ?? [] });
    return (this.dnsP ??= readFile('/etc/resolv.conf', 'utf8').catch(() => '').then((t) => workspaceNameservers(t)));
  }

  async probe(): Promise<Capabilities> {
    const no = (reason: string, details?: Record<string, unknown>): Capabilities => ({ driver: 'container', available: false, reason, details });
    if (process.platform !== 'linux') return no('containers need Linux');
    if (process.getuid?.() !== 0) return no('the container driver needs root (namespaces, cgroups, overlay mounts): run hearthd as root');
    let version: string;
    try {
      version = await this.runc.version();
    } catch (e) {
      return no(`runc does not run: ${(e as Error).message}`, { hint: 'install it: apt-get install runc' });
    }
    const layout = await this.layout();
    const details = { runc: version, cgroups: layout.mode };
    if (layout.mode === 'v2') {
      const missing = ['memory', 'pids', 'cpu'].filter((c) => !layout.v2Controllers.includes(c));
      if (missing.length) return no(`cgroup v2 controllers not enabled: ${missing.join(', ')}`, details);
    } else {
      const missing = ['memory', 'pids', 'cpu', 'cpuacct', 'devices', 'freezer'].filter((c) => !layout.v1[c]);
      if (layout.mode === 'none' || missing.length) return no(`cgroup controllers not mounted: ${missing.join(', ') || 'none at all'}`, details);
    }
    const filesystems = await readFile('/proc/filesystems', 'utf8').catch(() => '');
    if (!/\toverlay$/m.test(filesystems)) return no('overlayfs is not available (modprobe overlay)', details);
    // Workspace disks (disk.ts): ext4 images on loop devices, made and grown with e2fsprogs.
    if (!/\text4$/m.test(filesystems) && !existsSync('/sys/module/ext4')) return no('ext4 is not available (modprobe ext4): workspace disks are ext4 images', details);
    if (!existsSync('/dev/loop-control')) return no('no loop devices (/dev/loop-control; modprobe loop): workspace disks are loop-mounted images', details);
    const e2fs = await Promise.all(['mkfs.ext4', 'resize2fs', 'e2fsck'].map((t) => hostRun(t, ['-V']).then(() => null, (e: Error) => (/ENOENT|not found/i.test(e.message) ? t : null))));
    const missing = e2fs.filter((t): t is string => t !== null);
    if (missing.length) return no(`${missing.join(', ')} not installed: workspace disks need e2fsprogs`, { ...details, hint: 'apt-get install e2fsprogs' });
    return { driver: 'container', available: true, reason: `runc ${version}, cgroups ${layout.mode}, overlayfs, ext4 disks`, details };
  }

  /**
   * Start the workspace. Critical path: [netns + veth (one ip), nft elements
   * (one nft), overlay mount (one mount), bundle files] concurrently, then
   * [runc run] concurrently with [address/route inside (one ip -n)]: the
   * agent listens on 0.0.0.0, so eth0 may get its address while runc is
   * still starting.
   */
  async run(spec: SandboxSpec): Promise<void> {
    const id = containerId(spec.workspaceId);
    validateSpec(spec);
    const phase = this.phases('run');
    if (this.runc.exists(id)) {
      const existing = await this.runc.state(id).catch(() => null);
      if (existing && (existing.status === 'running' || existing.status === 'paused' || existing.status === 'pausing')) return; // already up: idempotent
      await this.runc.delete(id, true); // a dead leftover (crash, reboot)
      phase('leftover');
    }

    const dir = spec.dir;
    const rootfs = join(dir, 'rootfs');
    const undo = new UndoStack();
    const fail = async (e: unknown, at: ContainerStage): Promise<never> => {
      const failures = await undo.unwind();
      const err = e instanceof ContainerDriverError ? e : new ContainerDriverError('run', at, e instanceof Error ? e.message : String(e), hintFor(at, e), { cause: e });
      if (failures.length) err.message += `; cleanup also failed: ${failures.join('; ')}`;
      throw err;
    };

    try {
      await Promise.all([
        mkdir(rootfs, { recursive: true }),
        mkdir(dirname(this.pidFile(id)), { recursive: true }),
      ]);
    } catch (e) {
      return fail(e, 'disk');
    }
    const [{ nameservers, search }, nofile, layout] = await Promise.all([this.dns(), (this.nofileP ??= nofileLimit()), this.layout()]);
    const swapAccounting = layout.mode === 'v2' || (layout.v1.memory !== undefined && existsSync(join(layout.v1.memory, 'memory.memsw.limit_in_bytes')));
    const config = ociConfig(spec, { rootfs, netns: this.network.netnsPath(spec.slot), cgroupsPath: this.cgroupsPath(spec.workspaceId), etcDir: dir }, { nofile, swapAccounting });
    phase('prepare');

    // Independent acquisitions run concurrently; each pushes its undo as soon as it exists.
    const allowInternet = (spec as ContainerSandboxSpec).allowInternet ?? true;
    const first = await settle([
      ['network', (async () => {
        undo.push('network', () => this.network.detach(spec.slot));
        await this.network.prepare(spec.slot, { allowInternet });
        phase('netns');
      })()],
      ['disk', (async () => {
        if (await isMountpoint(rootfs)) await unmount(rootfs); // leftover of a crash: remount on the current layers
        // The writable layer lives on the workspace's own disk image: the kernel enforces disk_size_mb.
        undo.push('disk', () => unmountDisk(dir));
        await ensureDisk(dir, spec.diskSizeMb, join(this.opts.workspacesRoot, '.disk-templates'), { directIo: true });
        phase('disk');
        const disk = diskPaths(dir);
        await this.logs.capNow(disk.console);
        await mountOverlay(rootfs, { lower: spec.image.layers, upper: disk.upper, work: disk.work });
        undo.push('rootfs', () => unmount(rootfs));
        phase('rootfs');
      })()],
      ['disk', Promise.all([
        writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2)),
        writeFile(join(dir, 'hostname'), renderHostname(spec.hostname)),
        writeFile(join(dir, 'hosts'), renderHosts(spec.hostname, spec.slot.ip)),
        writeFile(join(dir, 'resolv.conf'), renderResolvConf(nameservers, search)),
        writeFile(join(dir, 'runc.log'), ''), // runc appends: keep only this start's log
      ])],
    ]);
    if (first) return fail(first.reason, first.stage);

    const consoleLog = diskPaths(dir).console;
    const consoleFd = openSync(consoleLog, 'a', 0o600);
    undo.push('container', () => this.stopContainer(spec.workspaceId, id));
    const second = await settle([
      ['vmm', this.runc.run(id, { bundle: dir, pidFile: this.pidFile(id), logFile: join(dir, 'runc.log'), consoleFd }).then(() => phase('runc'))],
      ['network', this.network.configure(spec.slot).then(() => phase('network'))],
    ]).finally(() => closeSync(consoleFd));
    if (second) return fail(second.reason, second.stage);
    undo.commit();
    this.logs.watch(consoleLog);
  }

  /**
   * SIGKILL the container's init (the kernel then kills everything in its pid
   * namespace), wait for it to vanish, delete the runc container and unmount
   * the rootfs; the network is detached concurrently from the start (a dying
   * sandbox needs none). Idempotent; works from host state alone.
   */
  async stop(spec: SandboxSpec): Promise<void> {
    const id = containerId(spec.workspaceId);
    const phase = this.phases('stop');
    this.logs.unwatch(diskPaths(spec.dir).console);
    const killed = this.killInit(spec.workspaceId, id).then(() => phase('kill'));
    const failed = await settle([
      ['vmm', killed.then(() => this.stopContainer(spec.workspaceId, id)).then(() => phase('delete'))],
      ['disk', killed.catch(() => undefined).then(() => unmount(join(spec.dir, 'rootfs'))).then(() => this.releaseDisk(spec.dir)).then(() => phase('umount'))],
      ['network', this.network.detach(spec.slot).then(() => phase('detach'))],
    ]);
    if (failed) {
      const hint = failed.stage === 'disk' ? 'a process on the host may hold files under the rootfs open (lsof +D)' : undefined;
      throw new ContainerDriverError('stop', failed.stage, failed.reason instanceof Error ? failed.reason.message : String(failed.reason), hint, { cause: failed.reason });
    }
  }

  /** Kill the container's init if it is ours and alive, and wait until it is gone. */
  private async killInit(workspaceId: string, id: string): Promise<void> {
    if (!this.runc.exists(id)) return;
    const pid = await this.ownInitPid(workspaceId, id);
    if (!pid) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch { /* already gone */ }
    await this.thaw(workspaceId); // a frozen (paused) init only dies once thawed
    await waitGone(pid, this.opts.stopTimeoutMs ?? 10_000);
  }

  /** Kill (if still needed) and delete the runc container, and forget its pid file. */
  private async stopContainer(workspaceId: string, id: string): Promise<void> {
    if (this.runc.exists(id)) {
      await this.killInit(workspaceId, id);
      await this.runc.delete(id, true);
    }
    await rm(this.pidFile(id), { force: true });
  }

  private phases(op: string): (phase: string) => void {
    const trace = this.opts.trace;
    if (!trace) return () => undefined;
    const t0 = performance.now();
    return (phase) => trace({ op, phase, ms: performance.now() - t0 });
  }

  async pause(spec: SandboxSpec): Promise<void> {
    try {
      await this.runc.pause(containerId(spec.workspaceId));
    } catch (e) {
      throw new ContainerDriverError('pause', 'vmm', (e as Error).message, undefined, { cause: e });
    }
  }

  async resume(spec: SandboxSpec): Promise<void> {
    try {
      await this.runc.resume(containerId(spec.workspaceId));
    } catch (e) {
      throw new ContainerDriverError('resume', 'vmm', (e as Error).message, undefined, { cause: e });
    }
  }

  /** stop, then remove spec.dir entirely (only inside workspacesRoot, and only with nothing mounted below it). */
  async destroy(spec: SandboxSpec): Promise<void> {
    await this.stop(spec);
    await this.removeWorkspaceDir(spec.dir);
  }

  async removeOrphan(workspaceId: string, dir: string): Promise<void> {
    this.logs.unwatch(diskPaths(dir).console);
    await this.stopContainer(workspaceId, containerId(workspaceId));
    await this.removeWorkspaceDir(dir);
  }

  /**
   * Claim of a pooled container: its /etc/hostname and /etc/hosts (files
   * bound from spec.dir, rewritten in place so the bind mounts see them) and
   * its UTS host name become the workspace's. The host name is set from the
   * host (the agent lacks CAP_SYS_ADMIN), and only when it differs: a
   * workspace without a slug has the host name its pooled sandbox was born with.
   */
  async claimIdentity(spec: SandboxSpec): Promise<void> {
    validateSpec(spec);
    const id = containerId(spec.workspaceId);
    const hostnameFile = join(spec.dir, 'hostname');
    const was = (await readFile(hostnameFile, 'utf8').catch(() => '')).trim();
    await Promise.all([
      writeFile(hostnameFile, renderHostname(spec.hostname)),
      writeFile(join(spec.dir, 'hosts'), renderHosts(spec.hostname, spec.slot.ip)),
      this.restoreCpuWeight(spec.workspaceId),
    ]);
    if (was === spec.hostname) return;
    const pid = await this.ownInitPid(spec.workspaceId, id);
    if (!pid) throw new ContainerDriverError('run', 'vmm', `pooled container ${id} is not running`);
    await hostRun('nsenter', ['--target', String(pid), '--uts', 'hostname', spec.hostname]);
  }

  /** The CPU weight every workspace has (a pooled sandbox waited at the lowest: oci.ts POOLED_CPU_SHARES). */
  private async restoreCpuWeight(workspaceId: string): Promise<void> {
    const layout = await this.layout();
    const cg = this.cgroupsPath(workspaceId);
    if (layout.v1.cpu) await writeFile(join(layout.v1.cpu, cg, 'cpu.shares'), String(DEFAULT_CPU_SHARES));
    else if (layout.unified) await writeFile(join(layout.unified, cg, 'cpu.weight'), '100');
  }

  /** Copy the console log's tail out of the disk (readable while stopped), then unmount the disk. */
  private async releaseDisk(dir: string): Promise<void> {
    const d = diskPaths(dir);
    if (await isMountpoint(d.mount)) await keepTail(d.console, join(dir, 'console.log'), this.logs.cap).catch(() => undefined);
    await unmountDisk(dir);
  }

  /** Delete a workspace directory under the root, its rootfs unmounted first; never one with anything else still mounted. */
  private async removeWorkspaceDir(workspaceDir: string): Promise<void> {
    const dir = await this.safeWorkspaceDir(workspaceDir);
    if (!dir) return;
    await unmount(join(dir, 'rootfs'));
    await this.releaseDisk(dir);
    const mounted = await mountsUnder(dir);
    if (mounted.length) throw new ContainerDriverError('destroy', 'disk', `refusing to delete ${dir}: still mounted: ${mounted.join(', ')}`, 'unmount them first (umount -R)');
    await rm(dir, { recursive: true, force: true });
  }

  async state(spec: SandboxSpec): Promise<SandboxState> {
    const id = containerId(spec.workspaceId);
    const st = await this.runc.state(id).catch((e: Error) => {
      throw new ContainerDriverError('state', 'vmm', e.message, undefined, { cause: e });
    });
    if (st) return runcStatusToState(st.status);
    return hasDisk(spec.dir) ? 'stopped' : 'missing';
  }

  async stats(spec: SandboxSpec): Promise<SandboxStats | null> {
    return readStats(await this.layout(), this.cgroupsPath(spec.workspaceId));
  }

  async list(): Promise<string[]> {
    return (await this.listWithState()).map((c) => c.id);
  }

  async listWithState(): Promise<{ id: string; state: SandboxState }[]> {
    try {
      const all = (await this.runc.list())
        .filter((c) => c.id.startsWith(CONTAINER_PREFIX))
        .map((c) => ({ id: c.id.slice(CONTAINER_PREFIX.length), state: runcStatusToState(c.status) }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      // A restarted hearthd finds running workspaces here (reconcile): their console logs are capped from now on.
      for (const c of all) if (c.state !== 'stopped' && /^[A-Za-z0-9_.+-]+$/.test(c.id)) this.logs.watch(diskPaths(join(this.opts.workspacesRoot, c.id)).console);
      return all;
    } catch (e) {
      throw new ContainerDriverError('list', 'vmm', (e as Error).message, undefined, { cause: e });
    }
  }

  /**
   * Remove what the driver leaves between workspaces: the empty
   * /hearth/<instance> cgroup parents. For tests and `hearth` uninstall;
   * returns the directories that are still there because workspaces remain.
   */
  async teardown(): Promise<string[]> {
    return removeEmptyParents(await this.layout(), `/hearth/${this.instance}`);
  }

  /**
   * Grow the workspace's disk to spec.diskSizeMb: online (resize2fs) when it
   * is running and the host allows online resizes, else at its next start.
   * Never shrinks.
   */
  async resizeDisk(spec: SandboxSpec): Promise<'grown' | 'next-start' | 'unchanged'> {
    try {
      return await growDisk(spec.dir, spec.diskSizeMb);
    } catch (e) {
      throw new ContainerDriverError('run', 'disk', `growing the disk to ${spec.diskSizeMb} MB failed: ${(e as Error).message}`, 'check free space on the data dir', { cause: e });
    }
  }

  /** New cpus/memory for a running container: its cgroups change at once (runc update); a stopped one gets them at its next start. */
  async resizeLive(spec: SandboxSpec): Promise<'applied' | 'next-start'> {
    const id = containerId(spec.workspaceId);
    const st = await this.runc.state(id);
    if (!st || (st.status !== 'running' && st.status !== 'paused')) return 'next-start';
    const layout = await this.layout();
    const swap = layout.mode === 'v2' || (layout.v1.memory !== undefined && existsSync(join(layout.v1.memory, 'memory.memsw.limit_in_bytes')));
    const memoryBytes = spec.memoryMb * 1024 * 1024;
    try {
      await this.runc.update(id, { memoryBytes, swapBytes: swap ? memoryBytes : null, cpuQuota: Math.round(spec.cpus * CPU_PERIOD_US), cpuPeriod: CPU_PERIOD_US });
    } catch (e) {
      throw new ContainerDriverError('run', 'vmm', `changing the limits to ${spec.cpus} cpus, ${spec.memoryMb} MB failed: ${(e as Error).message}`, 'memory below what the workspace uses now cannot be set: free memory inside or pick a larger value', { cause: e });
    }
    return 'applied';
  }

  diskUsage(spec: SandboxSpec): Promise<DiskUsage> {
    return containerDiskUsage(spec.dir, spec.diskSizeMb);
  }

  overlayFiles(spec: SandboxSpec, limit: number, running: boolean): Promise<OverlayListing> {
    return overlayFiles(spec.dir, spec.diskSizeMb, limit, running);
  }

  syncDisk(spec: SandboxSpec): Promise<boolean> {
    return syncContainerDisk(spec.dir);
  }

  // Snapshots: file-system snapshots of the writable layer (snapshots.ts).
  snapshotSupport(): SnapshotSupport {
    return CONTAINER_SNAPSHOT_SUPPORT;
  }

  snapshot(spec: SandboxSpec, req: SnapshotRequest): Promise<DriverSnapshot> {
    return snapshotContainer(this.runc, containerId(spec.workspaceId), spec, req);
  }

  restoreSnapshot(spec: SandboxSpec, dir: string, snap: Pick<DriverSnapshot, 'format' | 'kinds'>): Promise<{ state: SandboxState }> {
    return restoreContainer(this.runc, containerId(spec.workspaceId), spec, dir, snap);
  }

  /** The init pid from runc's pid file, if that process is still ours (in the workspace's cgroup). */
  private async ownInitPid(workspaceId: string, id: string): Promise<number | null> {
    const pid = Number((await readFile(this.pidFile(id), 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 1) return null;
    const cg = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
    return cg.split('\n').some((l) => l.endsWith(`:${this.cgroupsPath(workspaceId)}`)) ? pid : null;
  }

  private async thaw(workspaceId: string): Promise<void> {
    const layout = await this.layout();
    if (layout.v1.freezer) {
      await writeFile(join(layout.v1.freezer, this.cgroupsPath(workspaceId), 'freezer.state'), 'THAWED').catch(() => undefined);
    } else if (layout.unified) {
      await writeFile(join(layout.unified, this.cgroupsPath(workspaceId), 'cgroup.freeze'), '0').catch(() => undefined);
    }
  }

  /** spec.dir resolved, if it exists and lies strictly inside workspacesRoot; throws when outside. */
  private async safeWorkspaceDir(dir: string): Promise<string | null> {
    const root = await realpath(this.opts.workspacesRoot).catch(() => resolve(this.opts.workspacesRoot));
    const real = await realpath(dir).catch(() => null);
    if (real === null) return null;
    if (!real.startsWith(root + sep) || real.length <= root.length + 1) {
      throw new ContainerDriverError('destroy', 'validate', `refusing to delete ${dir}: not inside the workspaces root ${root}`);
    }
    return real;
  }
}

/** Await every step; the first rejected one (in list order), with its stage, or null. */
async function settle(steps: [ContainerStage, Promise<unknown>][]): Promise<{ stage: ContainerStage; reason: unknown } | null> {
  const results = await Promise.allSettled(steps.map(([, p]) => p));
  const i = results.findIndex((r) => r.status === 'rejected');
  return i < 0 ? null : { stage: steps[i]![0], reason: (results[i] as PromiseRejectedResult).reason };
}

function validateSpec(spec: SandboxSpec): void {
  const bad = (m: string) => new ContainerDriverError('run', 'validate', m);
  if (!(spec.cpus > 0)) throw bad(`cpus must be > 0 (got ${spec.cpus})`);
  if (!Number.isInteger(spec.memoryMb) || spec.memoryMb < 16) throw bad(`memoryMb must be an integer >= 16 (got ${spec.memoryMb})`);
  if (!Number.isInteger(spec.pidsLimit) || spec.pidsLimit < 8) throw bad(`pidsLimit must be an integer >= 8 (got ${spec.pidsLimit})`);
  if (!spec.image.layers.length) throw bad(`image ${spec.image.id} has no layers`);
  if (!spec.dir.startsWith('/')) throw bad(`spec.dir must be absolute (got ${spec.dir})`);
  if (!Number.isInteger(spec.diskSizeMb) || spec.diskSizeMb < MIN_DISK_MB) throw bad(`diskSizeMb must be an integer >= ${MIN_DISK_MB} (got ${spec.diskSizeMb})`);
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$/.test(spec.hostname) || spec.hostname.includes('..')) throw bad(`hostname ${JSON.stringify(spec.hostname)} is not a valid host name`);
}

function hintFor(stage: ContainerStage, e: unknown): string | undefined {
  const text = e instanceof Error ? e.message : String(e);
  if (stage === 'disk' && /overlay|mount/.test(text)) return 'check that the image layers exist (hearth images) and overlayfs is available';
  if (stage === 'network') return 'run `hearth doctor`: the bridge and nft table must exist (HostNetwork.ensure)';
  if (stage === 'vmm' && /cgroup/.test(text)) return 'cgroup setup failed: check the cgroup controllers (hearth doctor)';
  if (stage === 'vmm') return `see console.log and runc.log in the workspace directory`;
  return undefined;
}

/**
 * RLIMIT_NOFILE for workspaces: 1048576, unless hearthd lacks
 * CAP_SYS_RESOURCE (some sandboxed hosts), in which case runc cannot raise
 * the hard limit above hearthd's own and the container would fail to start.
 */
export async function nofileLimit(): Promise<number> {
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const capEff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`);
  if (capEff & (1n << 24n)) return NOFILE_LIMIT; // CAP_SYS_RESOURCE
  const limits = await readFile('/proc/self/limits', 'utf8').catch(() => '');
  const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(limits)?.[1];
  return hard && hard !== 'unlimited' ? Math.min(NOFILE_LIMIT, Number(hard)) : NOFILE_LIMIT;
}

/** Poll until /proc/<pid> is gone or a zombie (its pid namespace is then empty). */
async function waitGone(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
    if (st === null || /\) [ZX] /.test(st)) return;
    if (Date.now() > deadline) throw new Error(`init ${pid} still alive ${timeoutMs} ms after SIGKILL`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** runc's status words as sandbox states: created or stopped is present but not running. */
function runcStatusToState(status: string): SandboxState {
  if (status === 'running') return 'running';
  if (status === 'paused' || status === 'pausing') return 'paused';
  return 'stopped';
}
