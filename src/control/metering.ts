/**
 * Metering: resource-seconds per workspace, written to hourly buckets.
 *
 * Each workspace row remembers up to when it has been metered
 * (`metered_at`). `accrue(ws)` bills the interval since then at the rates of
 * the workspace's current state, splits it at hour boundaries, adds it to
 * `usage_buckets` and charges the namespace's quota. The workspace service
 * calls it before every state change (so each interval is billed at the
 * right state), and a periodic tick calls it for every workspace — billing
 * is exact to the millisecond whatever the tick period.
 *
 * Rates (docs/pricing.md): while the sandbox holds its resources
 * (provisioning, running, paused) vCPU + memory + disk are billed; while
 * stopped, sleeping or failed only disk (its writable layer stays on the
 * host). Egress bytes come from the host side of the workspace's link.
 */
import type { Logger } from 'pino';
import type { Db } from '../store/db.ts';
import type { Workspace } from './workspaces/row.ts';
import type { NamespaceService } from './namespaces.ts';
import { credits, splitByHour } from '../core/pricing.ts';
import { KeyedMutex } from '../core/keyed-mutex.ts';

const HOLDS_RESOURCES = new Set(['provisioning', 'running', 'paused']);

export interface EgressCounter {
  /** Bytes the workspace has sent so far (monotonic while its link exists), or null. */
  egressBytes(ws: Workspace): Promise<number | null>;
}

export class Meter {
  private readonly lastEgress = new Map<string, number>();
  /** accrue() for one workspace never overlaps itself (tick vs state change): no interval is billed twice. */
  private readonly locks = new KeyedMutex();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly namespaces: Pick<NamespaceService, 'charge'> | null,
    private readonly egress: EgressCounter | null,
  ) {}

  accrue(ws: Workspace): Promise<void> {
    return this.locks.run(ws.id, () => this.accrueNow(ws, Date.now()));
  }

  private async accrueNow(ws: Workspace, at: number): Promise<void> {
    const row = await this.db.selectFrom('workspaces').select(['metered_at', 'created_at', 'state', 'config', 'namespace']).where('id', '=', ws.id).executeTakeFirst();
    if (!row) return;
    const from = Date.parse(row.metered_at ?? row.created_at);
    if (!(at > from)) return;
    const cfg = JSON.parse(row.config) as { cpus: number; memory_mb: number; disk_size_mb: number };
    const full = HOLDS_RESOURCES.has(row.state);
    let egressBytes = 0;
    if (this.egress && full) {
      const now = await this.egress.egressBytes(ws).catch(() => null);
      if (now !== null) {
        const before = this.lastEgress.get(ws.id);
        egressBytes = before === undefined || now < before ? 0 : now - before;
        this.lastEgress.set(ws.id, now);
      }
    }
    const pieces = splitByHour(from, at);
    const totalSeconds = (at - from) / 1000;
    let charged = 0;
    for (const { bucket, seconds } of pieces) {
      const share = seconds / totalSeconds;
      const r = {
        vcpuSeconds: full ? cfg.cpus * seconds : 0,
        memoryMbSeconds: full ? cfg.memory_mb * seconds : 0,
        diskMbSeconds: cfg.disk_size_mb * seconds,
        egressBytes: egressBytes * share,
      };
      const c = credits(r);
      charged += c;
      await this.db.insertInto('usage_buckets').values({
        workspace_id: ws.id, namespace: row.namespace, bucket, seconds, vcpu_seconds: r.vcpuSeconds, memory_mb_seconds: r.memoryMbSeconds,
        disk_mb_seconds: r.diskMbSeconds, cpu_used_seconds: 0, egress_bytes: r.egressBytes, credits: c, records: 1,
      }).onConflict((oc) => oc.columns(['workspace_id', 'bucket']).doUpdateSet((eb) => ({
        seconds: eb('usage_buckets.seconds', '+', seconds),
        vcpu_seconds: eb('usage_buckets.vcpu_seconds', '+', r.vcpuSeconds),
        memory_mb_seconds: eb('usage_buckets.memory_mb_seconds', '+', r.memoryMbSeconds),
        disk_mb_seconds: eb('usage_buckets.disk_mb_seconds', '+', r.diskMbSeconds),
        egress_bytes: eb('usage_buckets.egress_bytes', '+', r.egressBytes),
        credits: eb('usage_buckets.credits', '+', c),
        records: eb('usage_buckets.records', '+', 1),
      }))).execute();
    }
    await this.db.updateTable('workspaces').set({ metered_at: new Date(at).toISOString() }).where('id', '=', ws.id).execute();
    if (row.namespace && this.namespaces && charged > 0) await this.namespaces.charge(row.namespace, charged);
  }

  /** Meter every workspace up to now. */
  async tick(): Promise<void> {
    const rows = await this.db.selectFrom('workspaces').select('id').where('state', 'not in', ['deleted']).execute();
    for (const { id } of rows) {
      await this.accrue({ id } as Workspace).catch((err) => this.log.error({ workspace: id, err }, 'metering failed'));
    }
  }

  start(everyMs: number): void {
    let busy = false;
    this.timer = setInterval(() => {
      if (busy) return;
      busy = true;
      this.tick().finally(() => { busy = false; });
    }, everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
