/** Percentiles the create and exec benches print (bench/netns.ts keeps the older p90 form). */
/** p50/p95/p99 (nearest rank) with min, max and mean, in ms. */
export function stats(samples: number[]): { n: number; p50: number; p95: number; p99: number; min: number; max: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  const r = (x: number) => Math.round(x * 10) / 10;
  return { n: s.length, p50: r(at(0.5)), p95: r(at(0.95)), p99: r(at(0.99)), min: r(s[0]!), max: r(s.at(-1)!), mean: r(s.reduce((a, b) => a + b, 0) / s.length) };
}
