/**
 * Templates: VMs booted once per shape (image, disk size, vCPUs, memory,
 * boot artifacts), stopped while their launcher waits for an identity and
 * written to disk, so a workspace of that shape restores one instead of
 * booting cold (driver.ts, boot.ts). This module builds, verifies and
 * finds them (TemplateCache), and says which ones are stale.
 *
 * `vm/templates/<key16>/` holds `state.bin` (RAM + devices), `disk.qcow2`
 * (the overlay at snapshot time) and `template.json` (below). Templates are
 * a cache: deleting any of them is always safe (the next workspace of that
 * shape boots cold and a new one is built). `hearth images gc` removes the
 * ones no current key can ever name again — after an upgrade that is every
 * template of the previous agent drive, about 130 MB per image.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs, { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path, { join } from 'node:path';
import { AGENT_PORT } from '../../../core/agent-protocol.ts';
import { hostRun } from '../../exec.ts';
import { duBytes } from '../../images/gc.ts';
import { hashKey } from '../../images/hash.ts';
import { shortKey } from '../../images/paths.ts';
import type { SandboxSpec } from '../driver.ts';
import { ensureBaseDisk } from './boot-media/disks.ts';
import { vmPaths } from './boot-media/paths.ts';
import { consoleLogFault } from './console.ts';
import { diskFds, VM_UID_BASE, type LaunchRecord, type VmContext } from './context.ts';
import { IdentityChannel } from './identity.ts';
import { migrateToFile, resumeIncoming } from './migration.ts';
import { killHard, spawnQemu, tail } from './process.ts';
import { QEMU_ARGV_VERSION, qemuArgv, type QemuLaunch } from './qemu-argv.ts';

/**
 * Part of every template key; bump it when templates must be rebuilt.
 * 3: written from a stopped VM (2 migrated a running one, see docs/parts/microvm.md).
 */
export const TEMPLATE_VERSION = 3;

export interface TemplateMeta {
  /** Absent from templates older than version 3. */
  version?: number;
  key: string;
  image: string;
  base: string;
  launch: { kernel: string; initrd: string; agentDisk: string };
}

/** The artifacts a template built today would use. */
export interface CurrentVmArtifacts {
  kernel: string;
  initrd: string;
  agentDisk: string;
}

/**
 * Pure: why the template in directory `name` can never be restored again, or
 * null when a current key may still name it (another image or shape).
 */
export function templateStaleReason(name: string, meta: TemplateMeta | null, current: CurrentVmArtifacts, baseExists: boolean): string | null {
  if (/\.bad\./.test(name)) return 'withdrawn after a failed restore';
  if (!meta) return 'unfinished or unreadable (no template.json)';
  if (meta.version !== TEMPLATE_VERSION) return `template version ${meta.version ?? '2 or older'}, current ${TEMPLATE_VERSION}`;
  if (meta.launch.agentDisk !== current.agentDisk) return 'built with another agent drive';
  if (meta.launch.initrd !== current.initrd) return 'built with another initramfs';
  if (meta.launch.kernel !== current.kernel) return 'built with another guest kernel';
  if (!baseExists) return 'its base disk is gone';
  return null;
}

export interface TemplateGcReport {
  removed: string[];
  kept: number;
  freedBytes: number;
}

/** Remove (or, with dryRun, list) every template `templateStaleReason` condemns. */
export async function collectStaleTemplates(o: { artifactsDir?: string; current: CurrentVmArtifacts; dryRun?: boolean; log?: (line: string) => void }): Promise<TemplateGcReport> {
  const dir = vmPaths(o.artifactsDir).templates;
  const report: TemplateGcReport = { removed: [], kept: 0, freedBytes: 0 };
  for (const name of (await fs.readdir(dir).catch(() => [] as string[])).sort()) {
    const tpl = path.join(dir, name);
    const meta = await fs.readFile(path.join(tpl, 'template.json'), 'utf8').then((t) => JSON.parse(t) as TemplateMeta, () => null);
    const baseExists = meta ? await fs.access(meta.base).then(() => true, () => false) : false;
    const reason = templateStaleReason(name, meta, o.current, baseExists);
    if (!reason) {
      report.kept++;
      continue;
    }
    report.freedBytes += await duBytes(tpl);
    report.removed.push(`template ${name}${meta ? ` of ${meta.image}` : ''}: ${reason}`);
    o.log?.(`${o.dryRun ? 'would remove' : 'remove'} template ${name} (${reason})`);
    if (!o.dryRun) await fs.rm(tpl, { recursive: true, force: true });
  }
  return report;
}

const TEMPLATE_UID = VM_UID_BASE - 1;
const TEMPLATE_MAC = '02:48:ff:ff:ff:fe';
const TEMPLATE_SETTLE_MS = 3000;
/** How long a verification restore keeps running after its handshake before its console is read. */
const TEMPLATE_VERIFY_GRACE_MS = 1000;

/** A template found for a cold start: the launch it restores into and the files it restores from. */
export interface FoundTemplate {
  dir: string;
  launch: LaunchRecord;
  disk: string;
  state: string;
}

/** The templates of one driver: found on disk, built in the background or on request, verified before use. */
export class TemplateCache {
  private readonly building = new Map<string, Promise<string | null>>();
  private buildChain: Promise<unknown> = Promise.resolve();
  private readonly coldBoots = new Map<string, number>();
  /** Shapes whose background build failed all its attempts: not tried again by this hearthd (cold boots still work). */
  private readonly failedBuilds = new Set<string>();

  constructor(private readonly ctx: VmContext) {}

  /**
   * A template restores only into the exact machine it was taken on: the
   * key covers the launch record (kernel, initramfs, agent disk, command
   * line, vCPUs, memory), the base disk, and the whole QEMU argv with the
   * per-VM names blanked (any device change makes a new template).
   */
  key(rec: LaunchRecord, baseDisk: string): string {
    const argv = qemuArgv({
      name: 'x', accel: rec.accel, kernel: rec.kernel, initrd: rec.initrd, cmdline: rec.cmdline, vcpus: rec.vcpus, memoryMb: rec.memoryMb,
      rootDisk: 'x', agentDisk: rec.agentDisk, tap: 'x', mac: 'x', qmpSocket: 'x', identitySocket: 'x', consoleLog: 'x', pidFile: 'x', rootDiskFd: 3, rootDiskRoFd: 4,
    });
    return hashKey({ v: TEMPLATE_VERSION, argvVersion: QEMU_ARGV_VERSION, ...rec, baseDisk, argv });
  }

  async find(key: string): Promise<string | null> {
    const dir = join(vmPaths(this.ctx.opts.artifactsDir).templates, shortKey(key));
    return existsSync(join(dir, 'template.json')) ? dir : null;
  }

  /** A found template's launch record and files (what a restore from it needs). */
  async open(dir: string): Promise<FoundTemplate> {
    const meta = JSON.parse(await readFile(join(dir, 'template.json'), 'utf8')) as { launch: LaunchRecord };
    return { dir, launch: meta.launch, disk: join(dir, 'disk.qcow2'), state: join(dir, 'state.bin') };
  }

  /**
   * Build a template in the background once a shape (image, size, vCPUs,
   * memory) has booted cold twice in this hearthd: a one-off shape never
   * pays a template build (TCG boots cost whole seconds of CPU), a shape in
   * use gets the fast path from its third workspace on. `hearth setup`
   * builds the default shape of every image ahead of time.
   */
  schedule(key: string, spec: SandboxSpec, rec: LaunchRecord, base: string): void {
    const seen = (this.coldBoots.get(key) ?? 0) + 1;
    this.coldBoots.set(key, seen);
    if (seen < 2 || this.building.has(key) || this.failedBuilds.has(key)) return;
    const p = this.buildChain.then(() => this.build(key, spec, rec, base)).catch((e: Error) => {
      this.failedBuilds.add(key);
      this.ctx.log('template build failed; this shape boots cold until hearthd restarts', { image: spec.image.id, error: e.message });
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
  async ensure(spec: SandboxSpec): Promise<string> {
    const rec = await this.ctx.launchRecord(spec);
    const base = (await ensureBaseDisk(spec.image, spec.diskSizeMb, { artifactsDir: this.ctx.opts.artifactsDir })).file;
    const key = this.key(rec, base);
    const found = await this.find(key);
    if (found) return found;
    const pending = this.building.get(key);
    if (pending && (await pending)) return (await pending)!;
    return this.build(key, spec, rec, base);
  }

  private async build(key: string, spec: SandboxSpec, rec: LaunchRecord, base: string): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.buildOnce(key, spec, rec, base);
      } catch (e) {
        if (attempt >= 3 || !/template verification failed/.test((e as Error).message)) throw e;
        this.ctx.log('template failed its verification restore; building it again', { image: spec.image.id, attempt, error: (e as Error).message.slice(0, 300) });
      }
    }
  }

  private async buildOnce(key: string, spec: SandboxSpec, rec: LaunchRecord, base: string): Promise<string> {
    const vp = vmPaths(this.ctx.opts.artifactsDir);
    const final = join(vp.templates, shortKey(key));
    if (existsSync(join(final, 'template.json'))) return final;
    const t0 = Date.now();
    const tag = randomBytes(3).toString('hex');
    await mkdir(vp.tmp, { recursive: true });
    const scratch = join(vp.tmp, `template-${shortKey(key)}.${process.pid}.${tag}`);
    const run = join(this.ctx.opts.runDir, 'vm', `tpl-${tag}`);
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
        ...(this.ctx.opts.unprivileged === false ? {} : { runAs: `${TEMPLATE_UID}:${TEMPLATE_UID}` }),
      };
      const spawned = await spawnQemu(qemuArgv(launch), { logFile: join(scratch, 'qemu.log'), qmpSocket: launch.qmpSocket, cgroupDirs: [], fds: diskFds(disk) });
      pid = spawned.pid;
      const ch = await IdentityChannel.connect(launch.identitySocket);
      try {
        await ch.wait((m) => m.t === 'waiting', this.ctx.opts.bootTimeoutMs ?? 120_000, 'the launcher to wait for its identity');
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
      const bytes = await migrateToFile(spawned.qmp, join(run, 'mig.sock'), join(scratch, 'state.bin'), this.ctx.opts.unprivileged === false ? null : TEMPLATE_UID);
      spawned.qmp.close();
      await killHard(pid);
      pid = null;
      await this.verify(scratch, launch, run);
      await rm(join(scratch, 'qemu.log'), { force: true });
      await writeFile(join(scratch, 'template.json'), `${JSON.stringify({ version: TEMPLATE_VERSION, key, image: spec.image.id, digest: spec.image.digest, diskSizeMb: spec.diskSizeMb, base, launch: rec, bytes, built_ms: Date.now() - t0, built_at: new Date().toISOString() }, null, 2)}\n`);
      await mkdir(vp.templates, { recursive: true });
      try {
        await rename(scratch, final);
      } catch (e) {
        if (!existsSync(join(final, 'template.json'))) throw e;
      }
      this.ctx.log('template built', { image: spec.image.id, key: shortKey(key), ms: Date.now() - t0, state_mb: Math.round(bytes / 1e6) });
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
  private async verify(scratch: string, launch: QemuLaunch, run: string): Promise<void> {
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
}
