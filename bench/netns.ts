/**
 * Benchmarks run inside a network namespace of their own (like the tests):
 * the bridge, firewall and every workspace live there, so nothing a bench
 * does can reach any other network. `inOwnNetns()` re-executes the current
 * script under nsenter and returns false in the parent.
 */
import { spawnSync } from 'node:child_process';

export function inOwnNetns(script: string): boolean {
  if (process.env.HEARTH_BENCH_NETNS) return true;
  if (process.getuid?.() !== 0) throw new Error('benchmarks need root (runc, bridges, nftables)');
  const ns = `hth-bench-${process.pid}`;
  spawnSync('ip', ['netns', 'add', ns], { stdio: 'inherit' });
  spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up'], { stdio: 'inherit' });
  try {
    const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, process.execPath, '--import', 'tsx', script, ...process.argv.slice(2)], {
      stdio: 'inherit', env: { ...process.env, HEARTH_BENCH_NETNS: ns },
    });
    process.exitCode = r.status ?? 1;
  } finally {
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'inherit' });
  }
  return false;
}

export function percentiles(samples: number[]): { n: number; p50: number; p90: number; p99: number; min: number; max: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  const r = (x: number) => Math.round(x * 100) / 100;
  return { n: s.length, p50: r(at(0.5)), p90: r(at(0.9)), p99: r(at(0.99)), min: r(s[0]!), max: r(s[s.length - 1]!), mean: r(s.reduce((a, b) => a + b, 0) / s.length) };
}
