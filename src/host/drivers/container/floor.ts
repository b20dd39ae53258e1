/**
 * The physical floor for container start benchmarks: a bare `runc run` of a
 * rootfs with nothing Hearth adds (no overlay, no veth, no agent), only the
 * namespaces and the memory/pids limits docs/host-facts.md measured with. bench/
 * compares `ContainerDriver.run` against this on the same host.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostRun } from '../../exec.ts';

export interface FloorOptions {
  /** A ready root filesystem directory (used read-only). */
  rootfs: string;
  /** What to run; default `/bin/true` (the container starts and exits). */
  args?: string[];
  runcPath?: string;
}

export interface FloorResult {
  /** Wall time of `runc run` (create + start + exit + delete), ms. */
  ms: number;
}

/** Minimal OCI config: fresh namespaces (including an empty network namespace) and memory/pids limits. */
export function floorConfig(rootfs: string, args: string[]): Record<string, unknown> {
  return {
    ociVersion: '1.0.2',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args, env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], cwd: '/', noNewPrivileges: true },
    root: { path: rootfs, readonly: true },
    hostname: 'floor',
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }],
      resources: { memory: { limit: 128 * 1024 * 1024 }, pids: { limit: 64 } },
    },
  };
}

/** Run `args` in a bare runc container once and time it. Cleans up after itself. */
export async function bareRuncRun(opts: FloorOptions): Promise<FloorResult> {
  const dir = await mkdtemp(join(tmpdir(), 'hearth-floor-'));
  const runc = opts.runcPath ?? 'runc';
  const root = join(dir, 'state');
  const id = `hth-floor-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(join(dir, 'config.json'), JSON.stringify(floorConfig(opts.rootfs, opts.args ?? ['/bin/true'])));
    const t0 = performance.now();
    await hostRun(runc, ['--root', root, 'run', '--bundle', dir, id]);
    return { ms: performance.now() - t0 };
  } finally {
    await hostRun(runc, ['--root', root, 'delete', '--force', id], { okCodes: [0, 1] }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
