/**
 * The workspace's resource usage as seen from inside (spec §14 StatsEvent).
 *
 * CPU and memory come from the agent's own cgroup when one is visible:
 * in a container /proc/stat and /proc/meminfo describe the HOST, but the
 * cgroup namespace shows the workspace's cgroup at /sys/fs/cgroup (v1
 * `cpuacct.usage`, `memory.*`; v2 `cpu.stat`, `memory.current`). In a
 * microVM the agent sits in the root cgroup, whose counters are the whole
 * guest; without cgroups it falls back to /proc/stat and /proc/meminfo.
 * Memory "used" is usage minus inactive file cache (what `docker stats`
 * shows), capped by the limit. Disk is statfs(/). Network is every
 * interface but lo from /proc/net/dev (per network namespace, so the
 * workspace's own eth0 in a container).
 *
 * `cpu_usage` is percent of ONE core (two busy cores = 200), as
 * `docker stats` reports it; `cpu_cores` is the same as a fraction of
 * cores, `cpu_limit_cores` the allotment.
 */
import { readdir, readFile, statfs } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import {
  cgroupDir, cpuLimitCores, parseCgroupMounts, parseKeyValues, parseLimit, parseMeminfo, parseNetDev, parseProcStatCpu, parseSelfCgroup,
} from './proc.ts';

export interface RawSample {
  at: number;
  cpuNs: number;
  memUsedBytes: number;
  memLimitBytes: number;
  cpuLimitCores: number;
  diskTotalBytes: number;
  diskUsedBytes: number;
  diskAvailBytes: number;
  rx: number;
  tx: number;
  processes: number;
}

export type StatsEvent = Record<string, unknown>;

type CpuSource = { kind: 'cgroup-v1'; dir: string } | { kind: 'cgroup-v2'; dir: string } | { kind: 'proc' };
type MemSource = { kind: 'cgroup-v1'; dir: string } | { kind: 'cgroup-v2'; dir: string } | { kind: 'proc' };

async function read(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

const round1 = (n: number): number => Math.round(n * 10) / 10;
const MiB = 1024 * 1024;

export class GuestMetrics {
  private sources: Promise<{ cpu: CpuSource; mem: MemSource; cpuDir: string | null }> | null = null;
  private last: { sample: RawSample; event: StatsEvent } | null = null;
  private readonly startedAt = Date.now();

  /** Find the cgroup files once (they do not move while the agent runs). */
  private resolve(): Promise<{ cpu: CpuSource; mem: MemSource; cpuDir: string | null }> {
    this.sources ??= (async () => {
      const self = parseSelfCgroup((await read('/proc/self/cgroup')) ?? '');
      const mounts = parseCgroupMounts((await read('/proc/self/mountinfo')) ?? '');
      let cpu: CpuSource = { kind: 'proc' };
      let mem: MemSource = { kind: 'proc' };
      let cpuDir: string | null = null;
      const v1cpu = cgroupDir(mounts, self, 'cpuacct');
      const v2 = cgroupDir(mounts, self, '');
      if (v1cpu && (await read(join(v1cpu, 'cpuacct.usage'))) !== null) cpu = { kind: 'cgroup-v1', dir: v1cpu };
      else if (v2 && (await read(join(v2, 'cpu.stat'))) !== null) cpu = { kind: 'cgroup-v2', dir: v2 };
      cpuDir = cgroupDir(mounts, self, 'cpu') ?? v2;
      const v1mem = cgroupDir(mounts, self, 'memory');
      if (v1mem && (await read(join(v1mem, 'memory.usage_in_bytes'))) !== null) mem = { kind: 'cgroup-v1', dir: v1mem };
      else if (v2 && (await read(join(v2, 'memory.current'))) !== null) mem = { kind: 'cgroup-v2', dir: v2 };
      return { cpu, mem, cpuDir };
    })();
    return this.sources;
  }

  private async cpuNs(src: CpuSource): Promise<number> {
    if (src.kind === 'cgroup-v1') return Number((await read(join(src.dir, 'cpuacct.usage')))?.trim() ?? 0);
    if (src.kind === 'cgroup-v2') return (parseKeyValues((await read(join(src.dir, 'cpu.stat'))) ?? '').usage_usec ?? 0) * 1000;
    return parseProcStatCpu((await read('/proc/stat')) ?? '')?.busyNs ?? 0;
  }

  private async memory(src: MemSource): Promise<{ used: number; limit: number }> {
    const info = parseMeminfo((await read('/proc/meminfo')) ?? '');
    const total = info?.totalBytes ?? 0;
    if (src.kind === 'proc') return { used: info ? info.totalBytes - info.availableBytes : 0, limit: total };
    const v1 = src.kind === 'cgroup-v1';
    const usage = Number((await read(join(src.dir, v1 ? 'memory.usage_in_bytes' : 'memory.current')))?.trim() ?? 0);
    const stat = parseKeyValues((await read(join(src.dir, 'memory.stat'))) ?? '');
    const inactive = (v1 ? stat.total_inactive_file : stat.inactive_file) ?? 0;
    const limitText = await read(join(src.dir, v1 ? 'memory.limit_in_bytes' : 'memory.max'));
    const limit = (limitText !== null ? parseLimit(limitText) : null) ?? total;
    const cappedLimit = total > 0 ? Math.min(limit, total) : limit;
    return { used: Math.max(0, usage - inactive), limit: cappedLimit };
  }

  private async cpuLimit(dir: string | null): Promise<number> {
    const online = cpus().length || 1;
    if (!dir) return online;
    const cores = cpuLimitCores(await read(join(dir, 'cpu.cfs_quota_us')), await read(join(dir, 'cpu.cfs_period_us')), await read(join(dir, 'cpu.max')));
    return cores === null ? online : Math.min(cores, online);
  }

  /** Memory limit of the workspace in bytes (for workload percentages). */
  async memoryLimitBytes(): Promise<number> {
    const { mem } = await this.resolve();
    return (await this.memory(mem)).limit;
  }

  async sample(): Promise<RawSample> {
    const { cpu, mem, cpuDir } = await this.resolve();
    const [cpuNs, memory, limitCores, disk, net, processes] = await Promise.all([
      this.cpuNs(cpu),
      this.memory(mem),
      this.cpuLimit(cpuDir),
      statfs('/').catch(() => null),
      read('/proc/net/dev'),
      readdir('/proc').then((names) => names.filter((n) => /^\d+$/.test(n)).length, () => 0),
    ]);
    const n = parseNetDev(net ?? '');
    const total = disk ? disk.blocks * disk.bsize : 0;
    const free = disk ? disk.bfree * disk.bsize : 0;
    return {
      at: Date.now(),
      cpuNs,
      memUsedBytes: memory.used,
      memLimitBytes: memory.limit,
      cpuLimitCores: limitCores,
      diskTotalBytes: total,
      diskUsedBytes: total - free,
      diskAvailBytes: disk ? disk.bavail * disk.bsize : 0,
      rx: n.rx,
      tx: n.tx,
      processes,
    };
  }

  /** The StatsEvent between two samples (rates over their interval). */
  event(prev: RawSample, cur: RawSample): StatsEvent {
    const dt = Math.max(0.001, (cur.at - prev.at) / 1000);
    const cores = Math.max(0, (cur.cpuNs - prev.cpuNs) / 1e9 / dt);
    const diskDenom = cur.diskUsedBytes + cur.diskAvailBytes;
    const diskPct = diskDenom > 0 ? (cur.diskUsedBytes / diskDenom) * 100 : 0;
    return {
      timestamp: new Date(cur.at).toISOString(),
      cpu_usage: round1(cores * 100),
      cpu_cores: Math.round(cores * 1000) / 1000,
      cpu_limit_cores: Math.round(cur.cpuLimitCores * 1000) / 1000,
      cpu_time_ns: cur.cpuNs,
      memory_usage: cur.memLimitBytes > 0 ? round1((cur.memUsedBytes / cur.memLimitBytes) * 100) : 0,
      memory_used_bytes: cur.memUsedBytes,
      memory_limit_bytes: cur.memLimitBytes,
      memory_used_mb: round1(cur.memUsedBytes / MiB),
      memory_total_mb: round1(cur.memLimitBytes / MiB),
      disk_usage: round1(diskPct),
      guest_disk_used_bytes: cur.diskUsedBytes,
      guest_disk_total_bytes: cur.diskTotalBytes,
      guest_disk_used_pct: round1(diskPct),
      network: { rx: cur.rx, tx: cur.tx },
      network_in_bytes: cur.rx,
      network_out_bytes: cur.tx,
      network_rx_bps: Math.round(Math.max(0, cur.rx - prev.rx) / dt),
      network_tx_bps: Math.round(Math.max(0, cur.tx - prev.tx) / dt),
      processes: cur.processes,
      uptime: Math.round((Date.now() - this.startedAt) / 1000),
      interval_ms: cur.at - prev.at,
    };
  }

  /**
   * One StatsEvent now. Rates need two samples: the previous snapshot's
   * sample is reused when it is recent, otherwise two are taken 250 ms apart.
   */
  async snapshot(): Promise<StatsEvent> {
    const now = Date.now();
    if (this.last && now - this.last.sample.at < 200) return this.last.event;
    let prev = this.last?.sample;
    if (!prev || now - prev.at > 30_000) {
      prev = await this.sample();
      await new Promise((r) => setTimeout(r, 250));
    }
    const cur = await this.sample();
    const event = this.event(prev, cur);
    this.last = { sample: cur, event };
    return event;
  }

  /** Which files the numbers come from (shown by the metrics route, useful when they look wrong). */
  async describe(): Promise<Record<string, string>> {
    const { cpu, mem } = await this.resolve();
    return {
      cpu: cpu.kind === 'proc' ? '/proc/stat' : `${cpu.dir} (${cpu.kind})`,
      memory: mem.kind === 'proc' ? '/proc/meminfo' : `${mem.dir} (${mem.kind})`,
    };
  }
}
