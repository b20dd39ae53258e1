/**
 * Density: N idle container workspaces on one host. Reports host memory per
 * idle workspace (the drop of MemAvailable, and the instance's memory cgroup
 * plus hearthd's RSS growth), create → ready p50 of the first 10 and of the
 * last 10, a live network-policy update (PUT allow_internet, one nft
 * transaction) p50 at N, and hearthd's restart (kill -9 → endpoints
 * written, reconcile of N) time. Prints JSON.
 *
 * Usage: node --import tsx bench/density.ts [--workspaces 50]   (the figure: --workspaces 1000)
 *
 * Runs with `--warm-pool 0`, so every create is the same cold path and no
 * pooled sandbox is counted as a workspace.
 */
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Oblien } from 'oblien';
import { inOwnNetns } from './netns.ts';
import { stats } from './stats.ts';
import { startHearth } from '../test/helpers/hearth.ts';

const script = fileURLToPath(import.meta.url);
const arg = (name: string, d: number) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : d; };
const N = arg('workspaces', 50);
const MiB = 1024 * 1024;

function memAvailable(): number {
  return Number(/MemAvailable:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
}

function rss(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
}

function instanceCgroupBytes(bridge: string): number {
  try {
    return Number(fs.readFileSync(`/sys/fs/cgroup/memory/hearth/${bridge}/memory.usage_in_bytes`, 'utf8'));
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const h = await startHearth({ extraArgs: ['--log-level', 'warn', '--warm-pool', '0'] });
  try {
    const client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
    const headers = { 'content-type': 'application/json', 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret };
    // One create first, so image caches and the disk template are not counted as per-workspace cost.
    const warm = await client.workspaces.create({ image: 'debian-12', config: { memory_mb: 128, disk_size_mb: 256 } } as never) as Record<string, any>;
    await new Promise((r) => setTimeout(r, 2000));
    const avail0 = memAvailable();
    const rss0 = rss(h.proc.pid!);
    const cg0 = instanceCgroupBytes(h.bridge);
    const createMs: number[] = [];
    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      const ws = await client.workspaces.create({ image: 'debian-12', config: { memory_mb: 128, disk_size_mb: 256 } } as never) as Record<string, any>;
      createMs.push(performance.now() - t);
      ids.push(ws.id);
    }
    await new Promise((r) => setTimeout(r, 5000)); // idle: agents settle
    const perWs = {
      mem_available_drop_mib: Math.round(((avail0 - memAvailable()) / N / MiB) * 10) / 10,
      cgroups_plus_hearthd_rss_mib: Math.round((((instanceCgroupBytes(h.bridge) - cg0) + (rss(h.proc.pid!) - rss0)) / N / MiB) * 10) / 10,
    };
    const update: number[] = [];
    for (let i = 0; i < 10; i++) {
      const id = ids[i % ids.length]!;
      const t = performance.now();
      const res = await fetch(`${h.api}/workspace/${id}`, { method: 'PUT', headers, body: JSON.stringify({ config: { allow_internet: i % 2 === 1 } }) });
      await res.arrayBuffer();
      update.push(performance.now() - t);
    }
    const t = performance.now();
    await h.crashAndRestart();
    const restartMs = performance.now() - t;
    for (const id of [...ids, warm.id]) await client.workspaces.delete(id);
    const first = stats(createMs.slice(0, 10));
    const last = stats(createMs.slice(-10));
    process.stdout.write(JSON.stringify({
      bench: 'density', driver: 'container', image: 'debian-12', workspaces: N, cpus: os.cpus().length, unit: 'ms',
      memory_per_idle_workspace: perWs,
      create_first_10: first, create_last_10: last,
      create_last_to_first_p50: Math.round((last.p50 / first.p50) * 100) / 100,
      policy_update_via_api: stats(update),
      hearthd_restart_ms: Math.round(restartMs),
      targets: { memory_mib: 12, create_ratio: 1.2, restart_ms_at_1000: 5000, nft_update_p50_ms: 5 },
    }, null, 2) + '\n');
  } finally {
    await h.stop();
  }
}

if (inOwnNetns(script)) await main();
