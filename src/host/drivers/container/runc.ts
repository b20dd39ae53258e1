/**
 * A thin wrapper over the `runc` CLI (Debian's runc 1.1.x). One method per
 * runc verb; every call names its state root (`--root`), so test instances
 * and a production hearthd never see each other's containers.
 *
 * runc's own errors: `fatal()` prints the last error on stderr, and with
 * `--log <file> --log-format json` the details go to that file. For `run`
 * the container inherits runc's stdout/stderr (the console log), so the log
 * file is where the driver reads the reason of a failed start.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HostCommandError, hostRun } from '../../exec.ts';

export type RuncStatus = 'created' | 'running' | 'pausing' | 'paused' | 'stopped';

export interface RuncState {
  id: string;
  pid: number;
  status: RuncStatus;
  bundle: string;
  created: string;
}

/** runc's container id rule. */
export const RUNC_ID_RE = /^[\w+.-]+$/;

export class Runc {
  constructor(readonly root: string, readonly bin = 'runc') {}

  private args(...a: string[]): string[] {
    return ['--root', this.root, ...a];
  }

  /** runc keeps one directory per container under its root: existence without a spawn. */
  exists(id: string): boolean {
    return existsSync(join(this.root, id));
  }

  /** `runc run --detach`: resolves once the container's first process has been exec'd. */
  async run(id: string, opts: { bundle: string; pidFile: string; logFile: string; consoleFd: number }): Promise<void> {
    try {
      await hostRun(this.bin, [
        '--root', this.root, '--log', opts.logFile, '--log-format', 'json',
        'run', '--detach', '--pid-file', opts.pidFile, '--bundle', opts.bundle, id,
      ], { stdoutFd: opts.consoleFd, stderrFd: opts.consoleFd, timeoutMs: 60_000 });
    } catch (e) {
      if (!(e instanceof HostCommandError)) throw e;
      throw new HostCommandError(e.argv, e.code, (await lastRuncError(opts.logFile)) || e.stderr, e.signal);
    }
  }

  /** null when runc does not know the container. */
  async state(id: string): Promise<RuncState | null> {
    if (!this.exists(id)) return null;
    const r = await hostRun(this.bin, this.args('state', id), { okCodes: [0, 1] });
    if (r.code !== 0) {
      if (/does not exist|not found/.test(r.stderr)) return null;
      throw new HostCommandError([this.bin, ...this.args('state', id)], r.code, r.stderr);
    }
    return JSON.parse(r.stdout) as RuncState;
  }

  async list(): Promise<RuncState[]> {
    if (!existsSync(this.root)) return [];
    const { stdout } = await hostRun(this.bin, this.args('list', '--format', 'json'));
    return (JSON.parse(stdout || 'null') as RuncState[] | null) ?? [];
  }

  async kill(id: string, signal = 'KILL'): Promise<void> {
    await hostRun(this.bin, this.args('kill', id, signal));
  }

  /** Delete a stopped container (`force` also kills a running one, polling every 100 ms). */
  async delete(id: string, force = false): Promise<void> {
    const r = await hostRun(this.bin, this.args('delete', ...(force ? ['--force'] : []), id), { okCodes: [0, 1] });
    if (r.code !== 0 && !/does not exist|not found/.test(r.stderr)) throw new HostCommandError([this.bin, ...this.args('delete', id)], r.code, r.stderr);
  }

  async pause(id: string): Promise<void> {
    await hostRun(this.bin, this.args('pause', id));
  }

  async resume(id: string): Promise<void> {
    await hostRun(this.bin, this.args('resume', id));
  }

  /**
   * `runc update`: change a running container's cgroup limits in place (hot
   * resize). Memory and memory+swap are set together, so no swap beyond the
   * limit appears, in whichever order the kernel needs (runc orders them).
   */
  async update(id: string, r: { memoryBytes: number; swapBytes: number | null; cpuQuota: number; cpuPeriod: number }): Promise<void> {
    await hostRun(this.bin, this.args('update',
      '--memory', String(r.memoryBytes), ...(r.swapBytes !== null ? ['--memory-swap', String(r.swapBytes)] : []),
      '--cpu-quota', String(r.cpuQuota), '--cpu-period', String(r.cpuPeriod), id));
  }

  async version(): Promise<string> {
    const { stdout } = await hostRun(this.bin, ['--version']);
    return stdout.split('\n')[0]?.replace(/^runc version\s*/, '').trim() ?? '';
  }
}

/** The last error message in a runc JSON log file. */
export async function lastRuncError(logFile: string): Promise<string> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const lines = text.trim().split('\n').reverse();
  for (const line of lines) {
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level === 'error' && entry.msg) return entry.msg;
    } catch { /* not JSON */ }
  }
  return '';
}
