/**
 * The edge's HAProxy process: started, adopted, supervised and stopped by
 * hearthd. It runs in a session of its own (setsid), not as a child that
 * dies with hearthd: a crashed or restarted hearthd finds it again by its
 * pid file and runtime-API socket and adopts it, so exposed ports keep
 * serving while hearthd is down. hearthd polls it (every 100 ms) and starts
 * it again from freshly rendered files when it is gone.
 *
 * The files (configuration, maps, certificate list) are written by the
 * caller before `start()`; this module only runs the binary on them.
 * stderr (startup alerts) goes to haproxy.err next to the configuration.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RuntimeApi } from './runtime-api.ts';

export const HAPROXY_BINARY = '/usr/sbin/haproxy';

export interface HaproxyProcessOptions {
  /** Holds haproxy.cfg, admin.sock, haproxy.pid, haproxy.err. */
  dir: string;
  binary?: string;
  /** Called when the process was found dead; the caller re-renders the files and calls `start()`. */
  onExit?: (pid: number) => void;
  warn?: (msg: string, err?: unknown) => void;
}

function procState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/** Alive and not a zombie (an adopted process is reaped by init, a child of ours by Node). */
export function processAlive(pid: number): boolean {
  const s = procState(pid);
  return s !== null && s !== 'Z' && s !== 'X';
}

export class HaproxyProcess {
  readonly api: RuntimeApi;
  readonly cfgFile: string;
  readonly pidFile: string;
  private readonly errFile: string;
  private current: number | null = null;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(private readonly o: HaproxyProcessOptions) {
    this.cfgFile = path.join(o.dir, 'haproxy.cfg');
    this.pidFile = path.join(o.dir, 'haproxy.pid');
    this.errFile = path.join(o.dir, 'haproxy.err');
    this.api = new RuntimeApi(path.join(o.dir, 'admin.sock'));
  }

  get pid(): number | null {
    return this.current;
  }

  /** The pid of a live HAProxy running on this directory's configuration whose socket answers, if any. */
  async findRunning(): Promise<number | null> {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(this.pidFile, 'utf8').trim());
    } catch {
      return null;
    }
    if (!Number.isInteger(pid) || pid <= 1 || !processAlive(pid)) return null;
    let cmdline = '';
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return null;
    }
    // A recycled pid belonging to something else is never adopted.
    if (!cmdline.split('\0').includes(this.cfgFile)) return null;
    return (await this.api.alive()) ? pid : null;
  }

  /** Take over a running HAProxy found by findRunning(). */
  adopt(pid: number): void {
    this.current = pid;
    this.watch();
  }

  /** Start HAProxy on the files already written; resolves once its runtime API answers. */
  async start(): Promise<number> {
    const err = fs.openSync(this.errFile, 'w', 0o600);
    fs.rmSync(this.api.socketPath, { force: true });
    let child;
    try {
      child = spawn(this.o.binary ?? HAPROXY_BINARY, ['-f', this.cfgFile, '-db'], { detached: true, stdio: ['ignore', 'ignore', err] });
    } finally {
      fs.closeSync(err);
    }
    const pid = child.pid;
    if (!pid) throw new Error(`could not start ${this.o.binary ?? HAPROXY_BINARY}`);
    child.unref();
    let exited: string | null = null;
    child.once('exit', (code, signal) => { exited = signal ?? String(code); });
    fs.writeFileSync(this.pidFile, `${pid}\n`, { mode: 0o600 });
    const deadline = Date.now() + 10_000;
    while (!(await this.api.alive())) {
      if (exited !== null || Date.now() > deadline) {
        const why = fs.readFileSync(this.errFile, 'utf8').trim().split('\n').filter((l) => /ALERT|error/i.test(l)).join('\n');
        if (exited === null) process.kill(pid, 'SIGKILL');
        throw new Error(`haproxy did not start (${exited !== null ? `exited: ${exited}` : 'no answer on its socket'})${why ? `:\n${why}` : ''}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    this.current = pid;
    this.stopping = false;
    this.watch();
    return pid;
  }

  private watch(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      const pid = this.current;
      if (pid === null || this.stopping || processAlive(pid)) return;
      this.current = null;
      clearInterval(this.timer);
      this.o.onExit?.(pid);
    }, 100);
    this.timer.unref();
  }

  /** Stop watching, leaving HAProxy running (it keeps serving until a hearthd adopts it). */
  detach(): void {
    clearInterval(this.timer);
  }

  /** Stop HAProxy (hearthd's orderly shutdown). */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    const pid = this.current;
    this.current = null;
    if (pid === null || !processAlive(pid)) return;
    try { process.kill(pid, 'SIGTERM'); } catch { return; }
    const deadline = Date.now() + 3000;
    while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (processAlive(pid)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      while (processAlive(pid)) await new Promise((r) => setTimeout(r, 10));
    }
    fs.rmSync(this.pidFile, { force: true });
  }
}
