/**
 * create→ready and exec round-trip latency of the container driver, beside
 * the physical floor: a bare `runc run` of the same rootfs (overlay on the
 * same image layers, same namespaces, no network, no agent) on this machine.
 * Prints JSON. Usage: node --import tsx bench/create.ts [--runs 50]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Oblien, Runtime } from 'oblien';
import { inOwnNetns, percentiles } from './netns.ts';
import { startHearth } from '../test/helpers/hearth.ts';
import { resolveImage } from '../src/host/images/index.ts';

const script = fileURLToPath(import.meta.url);
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 50;

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

async function main(): Promise<void> {
  const floor = await bareRuncFloor(RUNS);
  const h = await startHearth({ extraArgs: ['--log-level', 'warn'] });
  try {
    const client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
    const create: number[] = [];
    const del: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '10m' } } as never) as Record<string, any>;
      create.push(performance.now() - t);
      if (ws.ready !== true) throw new Error(`workspace ${ws.id} was not ready in the create answer`);
      const d = performance.now();
      await client.workspaces.delete(ws.id);
      del.push(performance.now() - d);
    }
    const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '10m' } } as never) as Record<string, any>;
    const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
    const rt = new Runtime({ token, baseUrl: h.runtime });
    const raw = await client.workspaces.apiAccess.rawToken(ws.id) as { token: string; ip: string; port: number };
    const direct = new Runtime({ token: raw.token, baseUrl: `http://${raw.ip}:${raw.port}` });
    const exec: number[] = [];
    const execDirect: number[] = [];
    for (let i = 0; i < 10; i++) { await rt.exec.run(['true']); await direct.exec.run(['true']); }
    for (let i = 0; i < RUNS * 4; i++) {
      let t = performance.now();
      await rt.exec.run(['true']);
      exec.push(performance.now() - t);
      t = performance.now();
      await direct.exec.run(['true']);
      execDirect.push(performance.now() - t);
    }
    await client.workspaces.delete(ws.id);
    const f = percentiles(floor), c = percentiles(create), e = percentiles(exec);
    const out = {
      bench: 'create', driver: 'container', image: 'debian-12', runs: RUNS, cpus: os.cpus().length, unit: 'ms',
      floor_bare_runc_run: f,
      create_to_ready: c,
      delete: percentiles(del),
      exec_roundtrip_gateway: e,
      exec_roundtrip_direct_agent: percentiles(execDirect),
      ratio_create_p50_to_floor_p50: Math.round((c.p50 / f.p50) * 100) / 100,
      targets: { create_p50_ms: 150, exec_p50_ms: 10, create_ratio_to_floor: 3 },
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } finally {
    await h.stop();
  }
}

if (inOwnNetns(script)) await main();
