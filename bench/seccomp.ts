/**
 * What the container seccomp allow-list costs, against its floor measured in
 * the same run: the same bare `runc run` of the same overlay rootfs with no
 * filter at all. Two workloads, interleaved run by run so drift on this slow
 * host falls on both alike:
 *  - start: `runc run /bin/true` (the filter is compiled and loaded once per
 *    container start);
 *  - syscalls: `dd bs=1 count=N` from /dev/zero to /dev/null inside (2N
 *    read/write syscalls, each checked by the filter).
 * The allow-list is the one workspaces get (`seccompProfile()` of the
 * container driver, ptrace refused). Prints JSON with p50/p99 and the ratios.
 * Usage (root): node --import tsx bench/seccomp.ts [--runs 30] [--syscalls 500000]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { resolveImage } from '../src/host/images/index.ts';
import { seccompProfile } from '../src/host/drivers/container/index.ts';
import { percentiles } from './netns.ts';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg('runs', 30);
const SYSCALLS = arg('syscalls', 500_000);

type Variant = 'floor' | 'allowlist';

function bundleConfig(env: string[], args: string[], variant: Variant): Record<string, unknown> {
  return {
    ociVersion: '1.0.2',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args, env, cwd: '/', noNewPrivileges: true },
    root: { path: 'rootfs', readonly: false },
    hostname: 'bench',
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }, { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] }],
    linux: {
      namespaces: ['pid', 'ipc', 'uts', 'mount', 'network'].map((type) => ({ type })),
      resources: { memory: { limit: 512 * 1024 * 1024 }, pids: { limit: 1024 } },
      cgroupsPath: `/hearth-bench-seccomp/${process.pid}`,
      ...(variant === 'allowlist' ? { seccomp: seccompProfile() } : {}),
    },
  };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: runc and overlay mounts');
  const image = await resolveImage('debian-12');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-bench-seccomp-'));
  const root = path.join(dir, 'runc-root');
  const samples: Record<string, number[]> = {};
  let n = 0;
  try {
    for (const d of ['upper', 'work', 'rootfs']) fs.mkdirSync(path.join(dir, d));
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${image.layers.join(':')},upperdir=${dir}/upper,workdir=${dir}/work`, `${dir}/rootfs`]);
    const workloads: Record<string, string[]> = {
      start: ['/bin/true'],
      syscalls: ['/bin/dd', 'if=/dev/zero', 'of=/dev/null', 'bs=1', `count=${SYSCALLS}`, 'status=none'],
    };
    for (let i = 0; i < RUNS; i++) {
      for (const [name, args] of Object.entries(workloads)) {
        for (const variant of ['floor', 'allowlist'] as Variant[]) {
          fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(bundleConfig(image.env, args, variant)));
          const t = performance.now();
          execFileSync('runc', ['--root', root, 'run', '--bundle', dir, `bench-${process.pid}-${n++}`], { stdio: ['ignore', 'ignore', 'pipe'] });
          (samples[`${name}.${variant}`] ??= []).push(performance.now() - t);
        }
      }
    }
  } finally {
    execFileSync('umount', [`${dir}/rootfs`]);
    fs.rmSync(dir, { recursive: true, force: true });
    for (const c of ['memory', 'pids', 'cpu,cpuacct', 'cpuset', 'devices', 'freezer', 'blkio']) {
      try { fs.rmdirSync(`/sys/fs/cgroup/${c}/hearth-bench-seccomp/${process.pid}`); fs.rmdirSync(`/sys/fs/cgroup/${c}/hearth-bench-seccomp`); } catch { /* absent */ }
    }
  }
  const stats = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, percentiles(v)]));
  const ratio = (w: string, q: 'p50' | 'p99') => Number((stats[`${w}.allowlist`]![q] / stats[`${w}.floor`]![q]).toFixed(3));
  console.log(JSON.stringify({
    bench: 'seccomp', runs: RUNS, syscalls: SYSCALLS * 2, unit: 'ms', stats,
    ratios: { start: { p50: ratio('start', 'p50'), p99: ratio('start', 'p99') }, syscalls: { p50: ratio('syscalls', 'p50'), p99: ratio('syscalls', 'p99') } },
  }, null, 2));
}

await main();
