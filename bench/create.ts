/**
 * create → ready → first exec of container workspaces through the official
 * SDK, with warm pools and with `--warm-pool 0`, beside two floors measured
 * in the same run: a bare `runc run` of the same image's rootfs (overlay on
 * its layers, same namespaces, no network, no agent) and a bare `node -e 0`.
 * Each mode also runs a burst of parallel creates. Prints JSON.
 *
 * Usage: node --import tsx bench/create.ts [--runs 20] [--burst 10]
 *
 * "create → ready" is the SDK's create answer with `ready: true`; "first
 * exec" adds the runtime token and one `exec.run(['true'])` through the
 * gateway. In the pooled mode each sequential create waits first until the
 * pool holds a ready sandbox again and no refill runs (steady state: creates
 * slower than the refill; a refill in flight yields its CPU weight but still
 * shares two cores), and the burst waits until the pool holds `burst` of them.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Oblien, Runtime } from 'oblien';
import { inOwnNetns } from './netns.ts';
import { startHearth, type HearthInstance } from '../test/helpers/hearth.ts';
import { waitUntil } from '../test/helpers/wait.ts';
import { resolveImage } from '../src/host/images/index.ts';

const script = fileURLToPath(import.meta.url);
const arg = (name: string, d: number) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : d; };
const RUNS = arg('runs', 20);
const BURST = arg('burst', 10);

/** p50/p95/p99 (nearest rank) with min, max and mean, in ms. */
export function stats(samples: number[]): { n: number; p50: number; p95: number; p99: number; min: number; max: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  const r = (x: number) => Math.round(x * 10) / 10;
  return { n: s.length, p50: r(at(0.5)), p95: r(at(0.95)), p99: r(at(0.99)), min: r(s[0]!), max: r(s.at(-1)!), mean: r(s.reduce((a, b) => a + b, 0) / s.length) };
}

/** The floor: `runc run` of /bin/true on an overlay of the same image. */
async function bareRuncFloor(runs: number): Promise<number[]> {
  const image = await resolveImage('debian-12');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-floor-'));
  const root = path.join(dir, 'runc-root');
  const samples: number[] = [];
  try {
    for (const d of ['upper', 'work', 'rootfs']) fs.mkdirSync(path.join(dir, d));
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${image.layers.join(':')},upperdir=${dir}/upper,workdir=${dir}/work`, `${dir}/rootfs`]);
    const spec = {
      ociVersion: '1.0.2',
      process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/bin/true'], env: image.env, cwd: '/', noNewPrivileges: true },
      root: { path: 'rootfs', readonly: false },
      hostname: 'floor',
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
      linux: {
        namespaces: ['pid', 'ipc', 'uts', 'mount', 'network'].map((type) => ({ type })),
        resources: { memory: { limit: 512 * 1024 * 1024 }, pids: { limit: 1024 } },
        cgroupsPath: `/hearth-floor/${process.pid}`,
      },
    };
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      execFileSync('runc', ['--root', root, 'run', '--bundle', dir, `floor-${process.pid}-${i}`], { stdio: 'ignore' });
      samples.push(performance.now() - t);
    }
  } finally {
    execFileSync('umount', [`${dir}/rootfs`]);
    fs.rmSync(dir, { recursive: true, force: true });
    for (const c of ['memory', 'pids', 'cpu,cpuacct', 'cpuset', 'devices', 'freezer', 'blkio']) {
      try { fs.rmdirSync(`/sys/fs/cgroup/${c}/hearth-floor/${process.pid}`); fs.rmdirSync(`/sys/fs/cgroup/${c}/hearth-floor`); } catch { /* absent */ }
    }
  }
  return samples;
}

/** The other floor: a Node process that starts and exits (the agent is a Node process). */
function bareNodeFloor(runs: number): number[] {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    execFileSync(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    samples.push(performance.now() - t);
  }
  return samples;
}

function pooledIn(h: HearthInstance, state: 'ready' | 'filling'): number {
  const db = new Database(path.join(h.dataDir, 'hearth.db'), { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM warm_pool WHERE state = ?').get(state) as { n: number }).n;
  } finally {
    db.close();
  }
}

interface Timed { ready: number; firstExec: number; id: string }

/** One create → ready, then the runtime token and the first exec. */
async function createAndExec(h: HearthInstance, client: Oblien): Promise<Timed> {
  const t = performance.now();
  const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '10m' } } as never) as Record<string, any>;
  const ready = performance.now() - t;
  if (ws.ready !== true) throw new Error(`workspace ${ws.id} was not ready in the create answer`);
  const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
  const r = await new Runtime({ token, baseUrl: h.runtime }).exec.run(['true']);
  if (r.exit_code !== 0) throw new Error(`first exec in ${ws.id} failed: ${JSON.stringify(r)}`);
  return { ready, firstExec: performance.now() - t, id: ws.id };
}

async function mode(pool: number): Promise<Record<string, unknown>> {
  const h = await startHearth({ extraArgs: ['--log-level', 'warn', '--warm-pool', String(pool)] });
  try {
    const client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
    // Warm-up: the image cache, the disk template, and (pooled) the shape's demand.
    await client.workspaces.delete((await createAndExec(h, client)).id);
    const seq: Timed[] = [];
    for (let i = 0; i < RUNS; i++) {
      // Steady state: a ready sandbox, and no refill running (the refill itself is measured by the burst below).
      if (pool > 0) await waitUntil('a ready pooled sandbox and no refill running', async () => pooledIn(h, 'ready') >= 1 && pooledIn(h, 'filling') === 0, 120_000, 20);
      const r = await createAndExec(h, client);
      seq.push(r);
      await client.workspaces.delete(r.id);
    }
    if (pool > 0) await waitUntil(`${Math.min(BURST, pool)} ready pooled sandboxes`, async () => pooledIn(h, 'ready') >= Math.min(BURST, pool), 180_000, 50);
    const t = performance.now();
    const burst = await Promise.all(Array.from({ length: BURST }, () => createAndExec(h, client)));
    const burstAll = performance.now() - t;
    for (const r of burst) await client.workspaces.delete(r.id);
    return {
      warm_pool: pool,
      create_to_ready: stats(seq.map((r) => r.ready)),
      create_to_first_exec: stats(seq.map((r) => r.firstExec)),
      burst: { n: BURST, all_ready_ms: Math.round(Math.max(...burst.map((r) => r.ready))), all_first_exec_ms: Math.round(burstAll), ready: stats(burst.map((r) => r.ready)) },
    };
  } finally {
    await h.stop();
  }
}

async function main(): Promise<void> {
  const runc = stats(await bareRuncFloor(RUNS));
  const node = stats(bareNodeFloor(RUNS));
  const pooled = await mode(Math.max(BURST, 2));
  const cold = await mode(0);
  const p50 = (m: Record<string, unknown>, k: string) => (m[k] as { p50: number }).p50;
  const p99 = (m: Record<string, unknown>, k: string) => (m[k] as { p99: number }).p99;
  const r2 = (x: number) => Math.round(x * 100) / 100;
  const out = {
    bench: 'create', driver: 'container', image: 'debian-12', runs: RUNS, cpus: os.cpus().length, unit: 'ms',
    floor_bare_runc_run: runc,
    floor_bare_node_e0: node,
    pooled, cold,
    ratios: {
      pooled_first_exec_p50_to_runc_p50: r2(p50(pooled, 'create_to_first_exec') / runc.p50),
      pooled_first_exec_p99_to_runc_p50: r2(p99(pooled, 'create_to_first_exec') / runc.p50),
      pooled_burst_all_ready_to_runc_p50: r2((pooled.burst as { all_ready_ms: number }).all_ready_ms / runc.p50),
      cold_first_exec_p50_to_runc_plus_node_p50: r2(p50(cold, 'create_to_first_exec') / (runc.p50 + node.p50)),
    },
    targets: { pooled_p50_ratio: 0.5, pooled_p99_ratio: 1, burst_ratio: 3, cold_ratio: 1.2 },
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

if (inOwnNetns(script)) await main();
