/**
 * Per-workload CPU and memory (WorkloadStatsEvent, spec §13): the sum over
 * every process of the workload's session. Each workload is started with
 * setsid, so its session id is its leader's pid and covers the whole tree
 * (a child that calls setsid itself escapes the count — daemons that
 * double-fork are rare under a supervisor and would escape `stop` too).
 * One /proc scan serves all workloads.
 */
import { readdir, readFile } from 'node:fs/promises';
import { CLK_TCK, parsePidStat } from '../metrics/proc.ts';
import type { Workload } from './workload.ts';

export interface SessionTotals {
  cpuTicks: number;
  rssBytes: number;
  pids: number;
}

export async function scanSessions(): Promise<Map<number, SessionTotals>> {
  const out = new Map<number, SessionTotals>();
  const names = (await readdir('/proc').catch(() => [] as string[])).filter((n) => /^\d+$/.test(n));
  await Promise.all(names.map(async (n) => {
    const text = await readFile(`/proc/${n}/stat`, 'utf8').catch(() => null);
    const s = text ? parsePidStat(text) : null;
    if (!s) return;
    const t = out.get(s.session) ?? { cpuTicks: 0, rssBytes: 0, pids: 0 };
    t.cpuTicks += s.cpuTicks;
    t.rssBytes += s.rssBytes;
    t.pids += 1;
    out.set(s.session, t);
  }));
  return out;
}

/** What the previous collection saw, per workload id (rates are deltas). */
export type StatsState = Map<string, { at: number; pid: number; cpuTicks: number }>;

const round1 = (n: number): number => Math.round(n * 10) / 10;

export async function collectWorkloadStats(
  workloads: Workload[],
  prev: StatsState,
  memoryLimitBytes: number,
): Promise<{ events: Record<string, unknown>[]; state: StatsState }> {
  const sessions = await scanSessions();
  const at = Date.now();
  const state: StatsState = new Map();
  const events = workloads.map((w) => {
    const pid = w.status === 'running' || w.status === 'stopping' ? w.pid : null;
    const totals = pid !== null ? sessions.get(pid) : undefined;
    let cpu = 0;
    if (pid !== null && totals) {
      const before = prev.get(w.id);
      if (before && before.pid === pid && at > before.at) {
        cpu = ((totals.cpuTicks - before.cpuTicks) / CLK_TCK / ((at - before.at) / 1000)) * 100;
      }
      state.set(w.id, { at, pid, cpuTicks: totals.cpuTicks });
    }
    const mem = totals?.rssBytes ?? 0;
    return {
      workload_id: w.id,
      name: w.spec.name,
      status: w.status,
      pid,
      cpu_usage: round1(Math.max(0, cpu)),
      cpu_time_ms: totals ? Math.round((totals.cpuTicks * 1000) / CLK_TCK) : 0,
      memory_bytes: mem,
      memory_usage: memoryLimitBytes > 0 ? round1((mem / memoryLimitBytes) * 100) : 0,
      pids: totals?.pids ?? 0,
      restart_count: w.restarts.restarts,
      timestamp: new Date(at).toISOString(),
    };
  });
  return { events, state };
}
