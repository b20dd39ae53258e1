/**
 * What the per-workspace disk quota (container/disk.ts) costs, beside a bare
 * baseline measured in the same run, interleaved (bare, quota, bare, ...):
 *
 *   prepare   writable layer ready + overlay mounted, then unmounted again
 *             bare: mkdir upper/work on the data dir's file system
 *             quota: a new disk image (sparse copy of the template), loop
 *             mount, upper/work in it
 *   create    prepare + `runc run /bin/true` on that rootfs (a create's floor:
 *             the sandbox process itself)
 *   teardown  unmount rootfs (and disk) after that run (a stop's share)
 *   write     100 MB written into the rootfs and fsynced (dd conv=fsync)
 *   read      the same 100 MB read back (page cache, as programs usually read)
 *   read_direct  and again with O_DIRECT (past every cache: the device path)
 *
 * Prints JSON: p50/p99 per variant and quota/bare ratios of the p50s.
 * Usage: node --import tsx bench/disk.ts [--runs 20] [--disk-mb 4096]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { percentiles } from './netns.ts';
import { diskPaths, diskTemplate, ensureDisk, unmountDisk } from '../src/host/drivers/container/disk.ts';
import { mountOverlay, unmount } from '../src/host/drivers/container/mounts.ts';
import { resolveImage } from '../src/host/images/index.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg('--runs', 20);
const DISK_MB = arg('--disk-mb', 4096);

type Variant = 'bare' | 'quota';
const samples: Record<string, number[]> = {};
const record = (k: string, ms: number) => (samples[k] ??= []).push(ms);

async function lowerLayers(base: string): Promise<string[]> {
  const image = await resolveImage('debian-12').catch(() => null);
  if (image) return image.layers;
  // No built images: a busybox layer is enough for /bin/true.
  const dir = path.join(base, 'lower');
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.copyFileSync('/usr/bin/busybox', path.join(dir, 'bin/busybox'));
  fs.symlinkSync('busybox', path.join(dir, 'bin/true'));
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  return [dir];
}

function bundle(dir: string): void {
  const spec = {
    ociVersion: '1.0.2',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/bin/true'], env: ['PATH=/bin:/usr/bin'], cwd: '/', noNewPrivileges: true },
    root: { path: 'rootfs', readonly: false },
    hostname: 'disk-bench',
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: { namespaces: ['pid', 'ipc', 'uts', 'mount', 'network'].map((type) => ({ type })), cgroupsPath: `/hearth-disk-bench/${process.pid}` },
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
}

/** Make the writable layer and mount the rootfs; returns the teardown. */
async function prepare(v: Variant, dir: string, lower: string[], templates: string): Promise<() => Promise<void>> {
  const rootfs = path.join(dir, 'rootfs');
  fs.mkdirSync(rootfs, { recursive: true });
  if (v === 'bare') {
    fs.mkdirSync(path.join(dir, 'upper'));
    fs.mkdirSync(path.join(dir, 'work'));
    await mountOverlay(rootfs, { lower, upper: path.join(dir, 'upper'), work: path.join(dir, 'work') });
    return () => unmount(rootfs);
  }
  await ensureDisk(dir, DISK_MB, templates, { directIo: true });
  const d = diskPaths(dir);
  await mountOverlay(rootfs, { lower, upper: d.upper, work: d.work });
  return async () => {
    await unmount(rootfs);
    await unmountDisk(dir);
  };
}

async function main(): Promise<void> {
  const base = fs.mkdtempSync(path.join(process.env.HEARTH_BENCH_DIR ?? os.tmpdir(), 'hearth-disk-bench-'));
  const templates = path.join(base, '.disk-templates');
  const runcRoot = path.join(base, 'runc');
  try {
    const lower = await lowerLayers(base);
    await diskTemplate(templates, DISK_MB); // made once per size in a real host too
    let n = 0;
    for (let i = 0; i < RUNS; i++) {
      for (const v of (i % 2 ? ['quota', 'bare'] : ['bare', 'quota']) as Variant[]) {
        // prepare alone
        let dir = path.join(base, `ws${n++}`);
        let t = performance.now();
        let down = await prepare(v, dir, lower, templates);
        record(`prepare.${v}`, performance.now() - t);
        await down();
        fs.rmSync(dir, { recursive: true, force: true });
        // create: prepare + runc run + teardown
        dir = path.join(base, `ws${n++}`);
        t = performance.now();
        down = await prepare(v, dir, lower, templates);
        bundle(dir);
        execFileSync('runc', ['--root', runcRoot, 'run', '--bundle', dir, `disk-bench-${process.pid}-${n}`], { stdio: 'ignore' });
        record(`create.${v}`, performance.now() - t);
        t = performance.now();
        await down();
        record(`teardown.${v}`, performance.now() - t);
        fs.rmSync(dir, { recursive: true, force: true });
        // I/O through the overlay rootfs
        dir = path.join(base, `ws${n++}`);
        down = await prepare(v, dir, lower, templates);
        const file = path.join(dir, 'rootfs', 'big');
        t = performance.now();
        execFileSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', 'count=100', 'conv=fsync'], { stdio: 'ignore' });
        record(`write.${v}`, performance.now() - t);
        t = performance.now();
        execFileSync('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M'], { stdio: 'ignore' });
        record(`read.${v}`, performance.now() - t);
        t = performance.now();
        execFileSync('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'iflag=direct'], { stdio: 'ignore' });
        record(`read_direct.${v}`, performance.now() - t);
        await down();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    for (const m of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((p) => p?.startsWith(base)).reverse()) {
      execFileSync('umount', ['-l', m!]);
    }
    fs.rmSync(base, { recursive: true, force: true });
    for (const c of ['memory', 'pids', 'cpu,cpuacct', 'cpuset', 'devices', 'freezer', 'blkio', 'net_cls,net_prio', 'perf_event', 'hugetlb', 'rdma', 'misc']) {
      try { fs.rmdirSync(`/sys/fs/cgroup/${c}/hearth-disk-bench/${process.pid}`); } catch { /* absent */ }
      try { fs.rmdirSync(`/sys/fs/cgroup/${c}/hearth-disk-bench`); } catch { /* absent */ }
    }
  }
  const out: Record<string, unknown> = { runs: RUNS, disk_mb: DISK_MB, cpus: os.cpus().length };
  for (const k of ['prepare', 'create', 'teardown', 'write', 'read', 'read_direct']) {
    const bare = percentiles(samples[`${k}.bare`]!);
    const quota = percentiles(samples[`${k}.quota`]!);
    out[k] = { bare, quota, ratio_p50: Math.round((quota.p50 / bare.p50) * 1000) / 1000, added_ms_p50: Math.round((quota.p50 - bare.p50) * 10) / 10 };
  }
  console.log(JSON.stringify(out, null, 2));
}

await main();
