/**
 * Reading the cgroups runc made for a workspace (stats, leak checks,
 * teardown). runc creates and removes them; this module only reads, and
 * removes the empty per-instance parents runc leaves behind.
 *
 * Controllers are located from /proc/self/mountinfo, not assumed at
 * /sys/fs/cgroup/<name>, because hosts mount them combined (cpu,cpuacct) or
 * not at all. cgroupsPath is absolute, i.e. relative to each hierarchy's root.
 */
import { readFile, readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { SandboxStats } from '../driver.ts';

export interface CgroupLayout {
  /** 'v1' = only legacy hierarchies, 'hybrid' = v1 plus an (empty) unified, 'v2' = unified only. */
  mode: 'v1' | 'hybrid' | 'v2' | 'none';
  /** v1 controller (or name=) → mountpoint. */
  v1: Record<string, string>;
  /** cgroup2 mountpoint, if any. */
  unified: string | null;
  /** Controllers enabled in the unified hierarchy. */
  v2Controllers: string[];
}

/** Super options of a v1 cgroup mount that are flags, not controllers. */
const NOT_CONTROLLERS = new Set(['rw', 'ro', 'xattr', 'clone_children', 'noprefix', 'cpuset_v2_mode', 'none']);

export async function cgroupLayout(): Promise<CgroupLayout> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const v1: Record<string, string> = {};
  let unified: string | null = null;
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mountPoint = left.split(' ')[4] ?? '';
    const [fstype, , superOpts = ''] = right.split(' ');
    if (fstype === 'cgroup2') unified ??= mountPoint;
    if (fstype !== 'cgroup') continue;
    for (const opt of superOpts.split(',')) {
      if (NOT_CONTROLLERS.has(opt) || (opt.includes('=') && !opt.startsWith('name='))) continue;
      v1[opt] ??= mountPoint;
    }
  }
  let v2Controllers: string[] = [];
  if (unified) v2Controllers = (await readFile(join(unified, 'cgroup.controllers'), 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean);
  const hasV1 = Object.keys(v1).some((k) => !k.startsWith('name='));
  const mode = hasV1 ? (unified ? 'hybrid' : 'v1') : unified ? 'v2' : 'none';
  return { mode, v1, unified, v2Controllers };
}

/** Every directory `cgroupsPath` occupies on this host (one per hierarchy). */
export function cgroupDirs(layout: CgroupLayout, cgroupsPath: string): string[] {
  const mounts = new Set<string>(Object.values(layout.v1));
  if (layout.unified) mounts.add(layout.unified);
  return [...mounts].map((m) => join(m, cgroupsPath));
}

async function num(path: string): Promise<number | null> {
  try {
    const v = (await readFile(path, 'utf8')).trim();
    return v === 'max' ? Number.MAX_SAFE_INTEGER : Number(v);
  } catch {
    return null;
  }
}

/** Host-side usage of one cgroup, or null when it does not exist. */
export async function readStats(layout: CgroupLayout, cgroupsPath: string): Promise<SandboxStats | null> {
  if (layout.mode === 'v2' && layout.unified) {
    const dir = join(layout.unified, cgroupsPath);
    const cpuStat = await readFile(join(dir, 'cpu.stat'), 'utf8').catch(() => null);
    if (cpuStat === null) return null;
    const usec = Number(/usage_usec (\d+)/.exec(cpuStat)?.[1] ?? 0);
    return {
      cpuUsageNs: usec * 1000,
      memoryBytes: (await num(join(dir, 'memory.current'))) ?? 0,
      memoryLimitBytes: (await num(join(dir, 'memory.max'))) ?? 0,
      pids: (await num(join(dir, 'pids.current'))) ?? 0,
    };
  }
  const at = (ctrl: string, file: string) => (layout.v1[ctrl] ? join(layout.v1[ctrl], cgroupsPath, file) : null);
  const cpu = at('cpuacct', 'cpuacct.usage');
  const mem = at('memory', 'memory.usage_in_bytes');
  if (!cpu || !mem) return null;
  const [cpuUsageNs, memoryBytes, memoryLimitBytes, pids] = await Promise.all([
    num(cpu), num(mem), num(at('memory', 'memory.limit_in_bytes')!), at('pids', 'pids.current') ? num(at('pids', 'pids.current')!) : 0,
  ]);
  if (cpuUsageNs === null || memoryBytes === null) return null;
  return { cpuUsageNs, memoryBytes, memoryLimitBytes: memoryLimitBytes ?? 0, pids: pids ?? 0 };
}

/**
 * Remove `parent` (e.g. /hearth/<instance>) in every hierarchy if it holds
 * no workspace cgroups any more. Returns the directories still present
 * (non-empty ones are left alone).
 */
export async function removeEmptyParents(layout: CgroupLayout, parent: string): Promise<string[]> {
  const left: string[] = [];
  for (const dir of cgroupDirs(layout, parent)) {
    try {
      await rmdir(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      const children = await readdir(dir, { withFileTypes: true }).then((d) => d.filter((x) => x.isDirectory()).length).catch(() => 0);
      if (children === 0 && code !== 'EBUSY') throw e;
      left.push(dir);
    }
  }
  return left;
}
