/**
 * QEMU's own cgroup: `/hearth/<instance>/vm-<workspaceId>` in the memory,
 * cpu and pids hierarchies (v1) or the unified one (v2). QEMU is moved in by
 * the shell wrapper that execs it (qemuCommand), so every page it touches is
 * charged here from its first instruction.
 *
 * Limits: memory = guest RAM + QEMU's own overhead (TCG translation cache,
 * device state, I/O buffers); cpu quota = cpus × period (fractional cpus
 * are honoured here, vCPUs are rounded up); pids bound QEMU's threads.
 */
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CgroupLayout } from '../container/cgroups.ts';

export const QEMU_OVERHEAD_MB = 192;
const CPU_PERIOD_US = 100_000;
const QEMU_PIDS = 256;

export interface VmCgroupLimits {
  memoryMb: number;
  cpus: number;
}

/** Pure: the files to write, per controller directory, for the limits. */
export function cgroupWrites(layout: CgroupLayout, cgroupPath: string, limits: VmCgroupLimits): Array<{ dir: string; files: [string, string][] }> {
  const memBytes = String((limits.memoryMb + QEMU_OVERHEAD_MB) * 1024 * 1024);
  const quota = String(Math.round(limits.cpus * CPU_PERIOD_US));
  if (layout.mode === 'v2' && layout.unified) {
    return [{ dir: join(layout.unified, cgroupPath), files: [['memory.max', memBytes], ['cpu.max', `${quota} ${CPU_PERIOD_US}`], ['pids.max', String(QEMU_PIDS)]] }];
  }
  const out: Array<{ dir: string; files: [string, string][] }> = [];
  if (layout.v1.memory) out.push({ dir: join(layout.v1.memory, cgroupPath), files: [['memory.limit_in_bytes', memBytes]] });
  if (layout.v1.cpu) out.push({ dir: join(layout.v1.cpu, cgroupPath), files: [['cpu.cfs_period_us', String(CPU_PERIOD_US)], ['cpu.cfs_quota_us', quota]] });
  // Accounting only (stats), when cpuacct is a hierarchy of its own rather than co-mounted with cpu.
  if (layout.v1.cpuacct && layout.v1.cpuacct !== layout.v1.cpu) out.push({ dir: join(layout.v1.cpuacct, cgroupPath), files: [] });
  if (layout.v1.pids) out.push({ dir: join(layout.v1.pids, cgroupPath), files: [['pids.max', String(QEMU_PIDS)]] });
  return out;
}

/** Create the cgroup with its limits; returns the directories (their cgroup.procs take QEMU's pid). */
export async function createVmCgroup(layout: CgroupLayout, cgroupPath: string, limits: VmCgroupLimits): Promise<string[]> {
  const writes = cgroupWrites(layout, cgroupPath, limits);
  for (const w of writes) {
    await mkdir(w.dir, { recursive: true });
    for (const [file, value] of w.files) await writeFile(join(w.dir, file), value);
  }
  return writes.map((w) => w.dir);
}

/** Remove the cgroup directories (empty once QEMU is gone). Idempotent. */
export async function removeVmCgroup(layout: CgroupLayout, cgroupPath: string): Promise<void> {
  const dirs = cgroupWrites(layout, cgroupPath, { memoryMb: 0, cpus: 1 }).map((w) => w.dir);
  for (const d of dirs) {
    for (let i = 0; i < 50; i++) {
      try {
        await rmdir(d);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || i === 49) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
}
