/**
 * Starting and finding QEMU processes. QEMU is started detached (it outlives
 * a restarted hearthd, like runc containers do) through a one-line shell
 * wrapper that first moves itself into the VM's cgroup and then execs QEMU,
 * so the pid hearthd sees is QEMU's and every page QEMU touches is charged
 * to the VM. Nothing is kept in memory: the pid file and /proc tell whether
 * a VM runs, and `-name hearth-<id>` in its command line proves it is ours.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readTail } from '../../log-cap.ts';
import { readFile } from 'node:fs/promises';
import { Qmp } from './qmp.ts';

/** sh -c script: join every cgroup in $HEARTH_CGROUPS, then become QEMU. */
export const CGROUP_WRAPPER = 'for d in $HEARTH_CGROUPS; do echo $$ > "$d/cgroup.procs" || exit 97; done; exec "$@"';

export interface SpawnedQemu {
  pid: number;
  qmp: Qmp;
}

/**
 * Spawn `argv` (QEMU) detached with stderr to `logFile`, passing the files
 * in `fds` as fd 3, 4, … and then `incoming` (read-only), and wait until its QMP socket answers. If QEMU exits
 * first, the error carries the tail of its log.
 */
export async function spawnQemu(argv: string[], o: { logFile: string; qmpSocket: string; cgroupDirs: string[]; incoming?: string; timeoutMs?: number; fds?: Array<{ path: string; flags: 'r' | 'r+' }> }): Promise<SpawnedQemu> {
  const logFd = openSync(o.logFile, 'a', 0o600);
  // fd 3.. = the files in o.fds (root disk, read-write and read-only), then the migration stream.
  const rwFds = (o.fds ?? []).map((f) => openSync(f.path, f.flags));
  const inFd = o.incoming ? openSync(o.incoming, 'r') : undefined;
  let exited: string | null = null;
  let child;
  try {
    child = spawn('/bin/sh', ['-c', CGROUP_WRAPPER, 'sh', ...argv], {
      detached: true,
      stdio: ['ignore', 'ignore', logFd, ...rwFds, ...(inFd !== undefined ? [inFd] : [])],
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HEARTH_CGROUPS: o.cgroupDirs.join(' ') },
    });
  } finally {
    closeSync(logFd);
    for (const fd of rwFds) closeSync(fd);
    if (inFd !== undefined) closeSync(inFd);
  }
  child.on('exit', (code, signal) => { exited = signal ? `killed by ${signal}` : `exited with ${code}`; });
  child.on('error', (e) => { exited = `failed to start: ${e.message}`; });
  child.unref();
  const pid = child.pid;
  if (!pid) throw new Error('QEMU did not start');
  const deadline = Date.now() + (o.timeoutMs ?? 15_000);
  while (true) {
    if (exited) throw new Error(`QEMU ${exited}: ${await tail(o.logFile)}`);
    try {
      const qmp = await Qmp.connect(o.qmpSocket, 200);
      return { pid, qmp };
    } catch (e) {
      if (Date.now() > deadline) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
        throw new Error(`QEMU's QMP socket did not answer: ${(e as Error).message}; ${await tail(o.logFile)}`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** The last `bytes` of a log (only those are read: a log may be megabytes). */
export async function tail(file: string, bytes = 800): Promise<string> {
  return (await readTail(file, bytes)).trim() || '(no output)';
}

/** The pid in `pidFile` if that process is alive, not a zombie, and is the QEMU named `name`. */
export async function livePid(pidFile: string, name: string): Promise<number | null> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 1) return null;
  return (await isQemu(pid, name)) ? pid : null;
}

export async function isQemu(pid: number, name: string): Promise<boolean> {
  const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (st === null || /\) [ZX] /.test(st)) return false;
  const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmd.split('\0').includes(`${name},debug-threads=on`);
}

/** Poll until the process is gone or a zombie. */
export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 25)) {
    const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
    if (st === null || /\) [ZX] /.test(st)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
  }
}

export async function killHard(pid: number, timeoutMs = 10_000): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch { /* already gone */ }
  if (!(await waitGone(pid, timeoutMs))) throw new Error(`QEMU ${pid} still alive ${timeoutMs} ms after SIGKILL`);
}
