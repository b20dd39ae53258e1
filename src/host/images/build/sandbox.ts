/**
 * RUN steps execute in a real container, the same runc and the same
 * confinement as a container workspace (capabilities, seccomp, masked
 * paths, no new privileges, cgroup memory/pids/cpu limits), on an overlay of
 * the step's parent layers with the new layer as the upper dir: what the
 * command writes IS the layer (whiteouts and opaque dirs included, which
 * overlayfs reads back as lower layers).
 *
 * Network: none. The container gets a new network namespace with only
 * loopback, so a build cannot reach the host, other workspaces or the
 * internet, and its result depends only on its inputs (which is what makes
 * the content-keyed cache honest). Packages come in through COPY/ADD or the
 * base image.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, seccompProfile } from '../../drivers/container/oci.ts';
import { mountOverlay, unmount } from '../../drivers/container/mounts.ts';
import { hostRun } from '../../exec.ts';

export interface RunLimits {
  memoryMb: number;
  pids: number;
  cpus: number;
  timeoutMs: number;
}

export function runLimits(env: NodeJS.ProcessEnv = process.env): RunLimits {
  const n = (v: string | undefined, d: number) => (v && Number.isFinite(Number(v)) && Number(v) > 0 ? Number(v) : d);
  return {
    memoryMb: n(env.HEARTH_BUILD_MEMORY_MB, 2048), pids: n(env.HEARTH_BUILD_PIDS, 2048), cpus: n(env.HEARTH_BUILD_CPUS, 2),
    timeoutMs: n(env.HEARTH_BUILD_RUN_TIMEOUT_MS, 20 * 60_000),
  };
}

export interface RunSpec {
  id: string;
  argv: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  /** Parent layers, top first. */
  lower: string[];
  /** The new layer's tree (overlay upper). */
  upper: string;
  /** Scratch dir on the same filesystem (bundle, overlay work dir). */
  scratch: string;
  limits: RunLimits;
  runcRoot: string;
  onLine: (line: string) => void;
}

export interface RunResult {
  code: number;
  /** Last lines of output, for the error of a failing step. */
  tail: string[];
  timedOut: boolean;
}

/** The OCI config of one RUN. Pure. */
export function runConfig(s: Pick<RunSpec, 'id' | 'argv' | 'env' | 'cwd' | 'uid' | 'gid' | 'limits'>, rootfs: string): Record<string, unknown> {
  const caps = [...DEFAULT_CAPABILITIES];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false, user: { uid: s.uid, gid: s.gid }, args: s.argv, env: s.env, cwd: s.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: true,
    },
    root: { path: rootfs, readonly: false },
    hostname: 'build',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      // No network path: a fresh namespace with loopback only.
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }, { type: 'network' }],
      cgroupsPath: `/hearth-build/${s.id}`,
      resources: {
        devices: [{ allow: false, access: 'rwm' }, ...[[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 2], [136, undefined]].map(([major, minor]) => ({ allow: true, type: 'c', major, ...(minor === undefined ? {} : { minor }), access: 'rwm' }))],
        memory: { limit: s.limits.memoryMb * 1024 * 1024 },
        cpu: { quota: Math.round(s.limits.cpus * 100_000), period: 100_000 },
        pids: { limit: s.limits.pids },
      },
      seccomp: seccompProfile(),
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}

const TAIL_LINES = 20;

/** Run one step; never leaves a mount, a container or a cgroup behind. */
export async function runStep(s: RunSpec): Promise<RunResult> {
  const bundle = path.join(s.scratch, 'bundle');
  const rootfs = path.join(bundle, 'rootfs');
  const work = path.join(s.scratch, 'work');
  await fs.mkdir(rootfs, { recursive: true });
  await fs.mkdir(work, { recursive: true });
  await mountOverlay(rootfs, { lower: s.lower, upper: s.upper, work });
  const tail: string[] = [];
  let timedOut = false;
  try {
    // The working directory exists before the process starts in it (as Docker creates it).
    await fs.mkdir(path.join(rootfs, s.cwd), { recursive: true });
    await fs.writeFile(path.join(bundle, 'config.json'), JSON.stringify(runConfig(s, rootfs)));
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn('runc', ['--root', s.runcRoot, 'run', '--bundle', bundle, s.id], { stdio: ['ignore', 'pipe', 'pipe'] });
      let partial = '';
      const onData = (c: Buffer) => {
        const text = partial + c.toString('utf8');
        const lines = text.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) {
          s.onLine(l);
          tail.push(l);
          if (tail.length > TAIL_LINES) tail.shift();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      const timer = setTimeout(() => {
        timedOut = true;
        void hostRun('runc', ['--root', s.runcRoot, 'kill', s.id, 'KILL'], { okCodes: [0, 1] }).catch(() => undefined);
      }, s.limits.timeoutMs);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (partial) {
          s.onLine(partial);
          tail.push(partial);
          if (tail.length > TAIL_LINES) tail.shift();
        }
        resolve(code ?? (signal ? 128 + 9 : 1));
      });
    });
    return { code, tail, timedOut };
  } finally {
    await hostRun('runc', ['--root', s.runcRoot, 'delete', '--force', s.id], { okCodes: [0, 1] }).catch(() => undefined);
    await unmount(rootfs);
    await fs.rm(work, { recursive: true, force: true });
  }
}
