/**
 * Warm pools, the pure part: which creates may share a pooled sandbox (the
 * pool key), what a pooled sandbox is started with (a neutral, air-gapped
 * config of the key's resource shape), and how many each key should hold
 * (recent demand within the operator's cap). No I/O here; the pool itself
 * lives in src/control/warm-pool/.
 */
import { defaultConfig, type WorkspaceConfig } from './workspace-spec.ts';

/** What a pooled sandbox is made for: everything fixed when its sandbox starts. */
export interface PoolShape {
  driver: 'container' | 'microvm';
  /** The image name as asked for (what LocalHost resolves). */
  image: string;
  /** The resolved image's identity: a re-pulled tag makes a new key, so a stale sandbox is never handed out. */
  imageDigest: string;
  cpus: number;
  memory_mb: number;
  disk_size_mb: number;
  pids_limit: number | null;
  allow_ptrace: boolean;
}

/** The shape of a create, or null when it may not come from a pool (a snapshot is someone's data). */
export function poolShape(driver: PoolShape['driver'], image: string, imageDigest: string, config: WorkspaceConfig): PoolShape | null {
  if (driver !== 'container') return null; // microVM pools are not built yet
  if (image.trim().startsWith('snapshot:')) return null;
  const pids = Number(config.pids_limit);
  return {
    driver, image, imageDigest, cpus: config.cpus, memory_mb: config.memory_mb, disk_size_mb: config.disk_size_mb,
    pids_limit: Number.isInteger(pids) ? pids : null, allow_ptrace: config.allow_ptrace === true,
  };
}

/** One string per shape: equal keys start identical sandboxes. */
export function poolKey(s: PoolShape): string {
  return [s.driver, s.image, s.imageDigest, s.cpus, s.memory_mb, s.disk_size_mb, s.pids_limit ?? '-', s.allow_ptrace ? 'ptrace' : '-'].join('|');
}

/**
 * The config a pooled sandbox runs with until it is claimed: the shape's
 * limits and nothing of anyone (no env, no lists, no workloads), air-gapped,
 * so until a claim applies the workspace's own policy it can reach nothing.
 */
export function pooledConfig(s: PoolShape): WorkspaceConfig {
  return {
    ...defaultConfig(), cpus: s.cpus, memory_mb: s.memory_mb, disk_size_mb: s.disk_size_mb,
    ...(s.pids_limit !== null ? { pids_limit: s.pids_limit } : {}), ...(s.allow_ptrace ? { allow_ptrace: true } : {}),
    allow_internet: false,
  };
}

/** How long a create counts as demand for its key. */
export const DEMAND_WINDOW_MS = 10 * 60_000;
/** Creates within this span are "the recent rate": a burst asks for as many sandboxes as it had creates. */
export const RATE_WINDOW_MS = 60_000;

/**
 * Recent creates per key. target(): a key with any create in the demand
 * window holds at least one sandbox, and as many as it had creates in the
 * last minute, never more than the cap; a key gone quiet holds none.
 */
export class DemandTracker {
  private readonly seen = new Map<string, number[]>();

  record(key: string, at: number): void {
    const list = this.seen.get(key) ?? [];
    list.push(at);
    this.seen.set(key, list);
    this.prune(key, at);
  }

  target(key: string, at: number, cap: number): number {
    this.prune(key, at);
    const list = this.seen.get(key);
    if (!list?.length || cap <= 0) return 0;
    const recent = list.filter((t) => at - t <= RATE_WINDOW_MS).length;
    return Math.min(cap, Math.max(1, recent));
  }

  /** Keys with any demand left, most recent first. */
  keys(at: number): string[] {
    for (const k of [...this.seen.keys()]) this.prune(k, at);
    return [...this.seen.entries()].sort((a, b) => b[1].at(-1)! - a[1].at(-1)!).map(([k]) => k);
  }

  private prune(key: string, at: number): void {
    const list = this.seen.get(key);
    if (!list) return;
    while (list.length && at - list[0]! > DEMAND_WINDOW_MS) list.shift();
    if (list.length > 1000) list.splice(0, list.length - 1000);
    if (!list.length) this.seen.delete(key);
  }
}

/**
 * Which key to fill next: the one furthest below its target, while the
 * total stays within the cap. Null when nothing is to be filled.
 */
export function nextToFill(keys: string[], held: (key: string) => number, target: (key: string) => number, cap: number): string | null {
  const total = keys.reduce((n, k) => n + held(k), 0);
  if (total >= cap) return null;
  let best: string | null = null;
  let bestGap = 0;
  for (const k of keys) {
    const gap = target(k) - held(k);
    if (gap > bestGap) { best = k; bestGap = gap; }
  }
  return best;
}

/** Keys holding more than their target (demand fell): the surplus to remove. */
export function surplus(keys: string[], held: (key: string) => number, target: (key: string) => number): { key: string; extra: number }[] {
  return keys.map((key) => ({ key, extra: held(key) - target(key) })).filter((s) => s.extra > 0);
}

/**
 * The default cap: one pooled sandbox per 8 GiB of host memory, between 1 and
 * 4. An idle pooled container costs about 11 MiB, so memory is not what
 * bounds it: each one is a sandbox start the host pays for in advance, and
 * sandboxes nobody claims are CPU and slots spent for nothing.
 */
export function defaultPoolCap(totalMemBytes: number): number {
  return Math.max(1, Math.min(4, Math.floor(totalMemBytes / (8 * 1024 ** 3))));
}
