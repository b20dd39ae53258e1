/**
 * The price table (docs/pricing.md): credits per hour of each resource.
 * Hearth is self-hosted, so credits are an accounting unit for quotas and
 * reports, not money. Pure functions; metering and estimates use only these.
 */
export const PRICE_PER_HOUR = { vcpu: 1.0, memory_gb: 0.5, disk_gb: 0.01, egress_gb: 0.1 } as const;

export interface ResourceSeconds {
  vcpuSeconds: number;
  memoryMbSeconds: number;
  diskMbSeconds: number;
  egressBytes: number;
}

export function credits(r: ResourceSeconds): number {
  return (r.vcpuSeconds / 3600) * PRICE_PER_HOUR.vcpu
    + (r.memoryMbSeconds / 1024 / 3600) * PRICE_PER_HOUR.memory_gb
    + (r.diskMbSeconds / 1024 / 3600) * PRICE_PER_HOUR.disk_gb
    + (r.egressBytes / 1024 ** 3) * PRICE_PER_HOUR.egress_gb;
}

export function hourlyCredits(cpus: number, memoryMb: number, diskMb: number): number {
  return credits({ vcpuSeconds: cpus * 3600, memoryMbSeconds: memoryMb * 3600, diskMbSeconds: diskMb * 3600, egressBytes: 0 });
}

/** The hourly bucket (ISO, UTC, truncated to the hour) a moment falls in. */
export function hourBucket(ms: number): string {
  const d = new Date(ms);
  d.setUTCMinutes(0, 0, 0);
  return d.toISOString();
}

/**
 * Split the interval [fromMs, toMs) at hour boundaries: metering writes each
 * piece to its own bucket so per-hour and per-day reports are exact.
 */
export function splitByHour(fromMs: number, toMs: number): { bucket: string; seconds: number }[] {
  const out: { bucket: string; seconds: number }[] = [];
  let t = fromMs;
  while (t < toMs) {
    const next = Math.min(toMs, Math.floor(t / 3_600_000) * 3_600_000 + 3_600_000);
    out.push({ bucket: hourBucket(t), seconds: (next - t) / 1000 });
    t = next;
  }
  return out;
}
