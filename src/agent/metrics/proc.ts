/**
 * Parsers for the kernel files the agent reads its metrics from. Pure
 * (text in, numbers out) and unit-tested with literal file contents.
 *
 * Units: /proc/<pid>/stat times are in clock ticks (USER_HZ, 100 on every
 * x86-64 Linux) and rss in pages (4096 bytes on x86-64); Node offers no
 * sysconf, so both are constants here.
 */

export const CLK_TCK = 100;
export const PAGE_SIZE = 4096;

export interface NetCounters {
  rx: number;
  tx: number;
  /** Per interface (loopback excluded). */
  interfaces: Record<string, { rx: number; tx: number }>;
}

/** /proc/net/dev → bytes received and sent on every interface but lo. */
export function parseNetDev(text: string): NetCounters {
  const out: NetCounters = { rx: 0, tx: 0, interfaces: {} };
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (!name || name === 'lo' || name.includes('|')) continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (f.length < 9 || !Number.isFinite(f[0]) || !Number.isFinite(f[8])) continue;
    const rx = f[0] as number;
    const tx = f[8] as number;
    out.interfaces[name] = { rx, tx };
    out.rx += rx;
    out.tx += tx;
  }
  return out;
}

/** /proc/stat's first line → busy CPU time of the whole machine in ns. */
export function parseProcStatCpu(text: string): { busyNs: number; cpus: number } | null {
  const lines = text.split('\n');
  const first = lines.find((l) => l.startsWith('cpu '));
  if (!first) return null;
  const f = first.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  const busyTicks = user + nice + system + irq + softirq + steal;
  const cpus = lines.filter((l) => /^cpu\d+ /.test(l)).length;
  return { busyNs: (busyTicks * 1e9) / CLK_TCK, cpus };
}

/** /proc/meminfo → bytes. */
export function parseMeminfo(text: string): { totalBytes: number; availableBytes: number } | null {
  const get = (key: string): number | null => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : null;
  };
  const total = get('MemTotal');
  if (total === null) return null;
  const available = get('MemAvailable') ?? (get('MemFree') ?? 0) + (get('Cached') ?? 0);
  return { totalBytes: total, availableBytes: available };
}

export interface PidStat {
  pid: number;
  ppid: number;
  pgrp: number;
  session: number;
  /** utime + stime, in clock ticks. */
  cpuTicks: number;
  rssBytes: number;
}

/** /proc/<pid>/stat. The command name may hold spaces and parentheses: fields start after the last ')'. */
export function parsePidStat(text: string): PidStat | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const pid = Number(text.slice(0, text.indexOf('(')).trim());
  const f = text.slice(close + 2).trim().split(/\s+/);
  // f[0] = state (field 3); field n is f[n - 3].
  const num = (field: number): number => Number(f[field - 3]);
  const stat = {
    pid,
    ppid: num(4),
    pgrp: num(5),
    session: num(6),
    cpuTicks: num(14) + num(15),
    rssBytes: num(24) * PAGE_SIZE,
  };
  return Object.values(stat).every(Number.isFinite) ? stat : null;
}

/** /proc/self/cgroup → controller (or '' for the v2 unified hierarchy) → path. */
export function parseSelfCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const path = m[2] as string;
    if (m[1] === '') out.set('', path);
    for (const c of (m[1] as string).split(',')) if (c) out.set(c, path);
  }
  return out;
}

export interface CgroupMount {
  mountPoint: string;
  /** The part of the hierarchy mounted there (`/` inside a cgroup namespace). */
  root: string;
  /** v1 controllers, or [''] for cgroup2. */
  controllers: string[];
}

/** Cgroup mounts from /proc/self/mountinfo. */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const l = left.split(' ');
    const [fstype, , superOpts = ''] = right.split(' ');
    const root = l[3] ?? '/';
    const mountPoint = (l[4] ?? '').replace(/\\040/g, ' ');
    if (fstype === 'cgroup2') out.push({ mountPoint, root, controllers: [''] });
    else if (fstype === 'cgroup') out.push({ mountPoint, root, controllers: superOpts.split(',').filter((o) => !['rw', 'ro'].includes(o) && !o.includes('=')) });
  }
  return out;
}

/**
 * The directory of this process's own cgroup for `controller` ('' = v2).
 * Inside a container with a cgroup namespace the path is `/` and the mount
 * root is `/`: the container's cgroup is the mount point itself.
 */
export function cgroupDir(mounts: CgroupMount[], self: Map<string, string>, controller: string): string | null {
  const path = self.get(controller);
  if (path === undefined) return null;
  const mount = mounts.find((m) => m.controllers.includes(controller));
  if (!mount) return null;
  let rel = path;
  if (mount.root !== '/' && (rel === mount.root || rel.startsWith(`${mount.root}/`))) rel = rel.slice(mount.root.length);
  // A path outside the mounted part (`/../..`) means we cannot see our own cgroup: use the mount root.
  if (rel.startsWith('/..')) rel = '/';
  return rel === '/' || rel === '' ? mount.mountPoint : `${mount.mountPoint}${rel}`;
}

/** memory.stat (v1 or v2) → key → value. */
export function parseKeyValues(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** A cgroup limit file: a number, or "max"/a huge sentinel for "no limit". */
export function parseLimit(text: string): number | null {
  const t = text.trim();
  if (t === '' || t === 'max') return null;
  const n = Number(t);
  // v1 reports "no limit" as PAGE_COUNTER_MAX pages (≈ 2^63 rounded to pages).
  if (!Number.isFinite(n) || n >= 2 ** 62) return null;
  return n;
}

/** CPU cores a cgroup may use: v1 quota/period, or v2 `cpu.max` ("max 100000" / "200000 100000"). */
export function cpuLimitCores(quota: string | null, period: string | null, cpuMax: string | null): number | null {
  if (cpuMax !== null) {
    const [q, p] = cpuMax.trim().split(/\s+/);
    if (!q || q === 'max' || !p) return null;
    return Number(q) / Number(p);
  }
  if (quota === null || period === null) return null;
  const q = Number(quota.trim());
  const p = Number(period.trim());
  if (!(q > 0) || !(p > 0)) return null;
  return q / p;
}
