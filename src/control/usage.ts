/**
 * Usage reports over the metered buckets, in the contract's usage-unit
 * vocabulary (§23.3): cpu_time_minutes (allocated vCPU-minutes),
 * memory_gb_minutes, disk_io_gb (not measured: 0), network_gb (egress),
 * vcpu_hours, gb_hours, credits, records. Deterministic for a given range:
 * buckets are whole hours, grouped by hour or day in UTC.
 */
import type { Db } from '../store/db.ts';

export interface UsageUnits {
  cpu_time_minutes: number;
  memory_gb_minutes: number;
  disk_io_gb: number;
  disk_gb_minutes: number;
  network_gb: number;
  vcpu_hours: number;
  gb_hours: number;
  credits: number;
  records: number;
  seconds: number;
}

export interface UsageBucket extends UsageUnits {
  timestamp: string;
}

const r6 = (x: number) => Math.round(x * 1e6) / 1e6;

function units(rows: { seconds: number; vcpu_seconds: number; memory_mb_seconds: number; disk_mb_seconds: number; egress_bytes: number; credits: number; records: number }[]): UsageUnits {
  const sum = (f: (r: (typeof rows)[number]) => number) => rows.reduce((a, r) => a + f(r), 0);
  const cpuMin = sum((r) => r.vcpu_seconds) / 60;
  const memGbMin = sum((r) => r.memory_mb_seconds) / 1024 / 60;
  return {
    cpu_time_minutes: r6(cpuMin), memory_gb_minutes: r6(memGbMin), disk_io_gb: 0,
    disk_gb_minutes: r6(sum((r) => r.disk_mb_seconds) / 1024 / 60), network_gb: r6(sum((r) => r.egress_bytes) / 1024 ** 3),
    vcpu_hours: r6(cpuMin / 60), gb_hours: r6(memGbMin / 60), credits: r6(sum((r) => r.credits)), records: sum((r) => r.records),
    seconds: r6(sum((r) => r.seconds)),
  };
}

function groupKey(bucket: string, groupBy: 'hour' | 'day'): string {
  return groupBy === 'hour' ? bucket : `${bucket.slice(0, 10)}T00:00:00.000Z`;
}

export interface Range {
  from: string;
  to: string;
}

/** Parse `from`/`to` query values (ISO), defaulting to the last `days` days. */
export function parseRange(q: Record<string, unknown>, days = 30): Range {
  const to = typeof q.to === 'string' && !Number.isNaN(Date.parse(q.to)) ? new Date(q.to) : new Date();
  const from = typeof q.from === 'string' && !Number.isNaN(Date.parse(q.from)) ? new Date(q.from) : new Date(to.getTime() - days * 86_400_000);
  return { from: from.toISOString(), to: to.toISOString() };
}

export class UsageReports {
  constructor(private readonly db: Db) {}

  private async rows(where: { workspaceId?: string; namespace?: string; workspaceIds?: string[] }, range: Range) {
    let q = this.db.selectFrom('usage_buckets').selectAll()
      // A bucket belongs to the range when its hour starts in it.
      .where('bucket', '>=', new Date(Math.floor(Date.parse(range.from) / 3_600_000) * 3_600_000).toISOString())
      .where('bucket', '<', range.to);
    if (where.workspaceId) q = q.where('workspace_id', '=', where.workspaceId);
    if (where.namespace) q = q.where('namespace', '=', where.namespace);
    if (where.workspaceIds) q = q.where('workspace_id', 'in', where.workspaceIds.length ? where.workspaceIds : ['']);
    return q.orderBy('bucket').execute();
  }

  private buckets(rows: Awaited<ReturnType<UsageReports['rows']>>, groupBy: 'hour' | 'day'): UsageBucket[] {
    const groups = new Map<string, typeof rows>();
    for (const r of rows) {
      const k = groupKey(r.bucket, groupBy);
      groups.set(k, [...(groups.get(k) ?? []), r]);
    }
    return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([timestamp, rs]) => ({ timestamp, ...units(rs) }));
  }

  async workspace(workspaceId: string, range: Range, groupBy: 'hour' | 'day' = 'hour') {
    const rows = await this.rows({ workspaceId }, range);
    return { workspace_id: workspaceId, range, group_by: groupBy, buckets: this.buckets(rows, groupBy), totals: units(rows) };
  }

  async namespace(slug: string, range: Range, groupBy: 'hour' | 'day' = 'day') {
    const rows = await this.rows({ namespace: slug }, range);
    const perWorkspace = new Map<string, typeof rows>();
    for (const r of rows) perWorkspace.set(r.workspace_id, [...(perWorkspace.get(r.workspace_id) ?? []), r]);
    return {
      namespace: slug, range, group_by: groupBy, buckets: this.buckets(rows, groupBy), totals: units(rows),
      workspaces: [...perWorkspace.entries()].map(([id, rs]) => ({ workspace_id: id, ...units(rs) })),
    };
  }

  async many(workspaceIds: string[] | null, namespace: string | null, range: Range) {
    const rows = await this.rows({ ...(workspaceIds ? { workspaceIds } : {}), ...(namespace ? { namespace } : {}) }, range);
    const per = new Map<string, typeof rows>();
    for (const r of rows) per.set(r.workspace_id, [...(per.get(r.workspace_id) ?? []), r]);
    return { range, totals: units(rows), workspaces: [...per.entries()].map(([id, rs]) => ({ workspace_id: id, ...units(rs) })) };
  }

  async wipe(workspaceId: string): Promise<number> {
    const res = await this.db.deleteFrom('usage_buckets').where('workspace_id', '=', workspaceId).executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}
