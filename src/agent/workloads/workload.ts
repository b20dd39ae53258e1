/**
 * One supervised workload: its definition, its current process (in its own
 * session and process group, so a stop reaches the whole tree), its log
 * and the restart loop. Restart decisions come from policy.ts; this class
 * only carries them out. The process outlives any HTTP connection.
 *
 * Status: `stopped` (never started, or stopped on request), `running`,
 * `restarting` (waiting out the back-off), `stopping`, `exited` (ended by
 * itself with code 0, not restarted), `failed` (non-zero exit, signal or
 * spawn failure, not restarted).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { childEnv } from '../env.ts';
import { resolveArgv } from '../exec/argv.ts';
import { defaultShell } from '../shell.ts';
import { LineSplitter, type LogEntry, type LogStream } from '../logs/line.ts';
import { LogStore } from '../logs/store.ts';
import { decide, type RestartState } from './policy.ts';
import type { WorkloadSpec } from '../../core/agent-protocol/workload-spec.ts';
import type { WorkloadRecord } from './state-file.ts';
import { lookupUser, type ResolvedUser } from './user.ts';

export type WorkloadStatus = 'running' | 'restarting' | 'stopping' | 'stopped' | 'exited' | 'failed';

/** Statuses after which a log follower stops following (nothing more will come on its own). */
export const TERMINAL: ReadonlySet<WorkloadStatus> = new Set(['stopped', 'exited', 'failed']);

/** How long to wait for the pipes after the process exited (grandchildren may hold them). */
const PIPE_GRACE_MS = 250;
const MiB = 1024 * 1024;

export function defaultLogFile(logDir: string, id: string): string {
  return join(logDir, `workload-${id}.log`);
}

function signalNumber(name: string): number {
  return (osConstants.signals as Record<string, number>)[name] ?? 0;
}

function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

function iso(d: Date | null): string | null {
  return d ? d.toISOString() : null;
}

export interface WorkloadHooks {
  /** Agent diagnostics (also the boot log). */
  log(msg: string, fields?: Record<string, unknown>): void;
}

export class Workload {
  spec: WorkloadSpec;
  desired: 'running' | 'stopped';
  readonly createdAt: string;
  updatedAt: string;

  status: WorkloadStatus = 'stopped';
  pid: number | null = null;
  exitCode: number | null = null;
  signal: string | null = null;
  /** Why it is not running (final decision, spawn failure). */
  reason: string | null = null;
  startedAt: Date | null = null;
  exitedAt: Date | null = null;
  nextRestartAt: Date | null = null;
  restarts: RestartState = { restarts: 0, streak: 0 };
  logs: LogStore;

  private child: ChildProcess | null = null;
  /** Bumped per spawn: late events of an older process are ignored. */
  private gen = 0;
  private stopRequested = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private exitWaiters: (() => void)[] = [];
  private readonly statusListeners = new Set<(w: Workload) => void>();
  private readonly logListeners = new Set<(e: LogEntry) => void>();
  /** Deleted from the registry: followers stop. */
  removed = false;

  constructor(rec: WorkloadRecord, private readonly logDir: string, private readonly hooks: WorkloadHooks) {
    this.spec = rec.spec;
    this.desired = rec.desired;
    this.createdAt = rec.created_at;
    this.updatedAt = rec.updated_at;
    this.logs = this.openLogs();
  }

  /** A store for the current log file whose lines reach onLog() subscribers (they survive a log_path change). */
  private openLogs(): LogStore {
    const store = new LogStore(this.logFile(), this.spec.max_log_size_mb * MiB);
    store.subscribe((e) => {
      for (const fn of this.logListeners) {
        try { fn(e); } catch { /* one bad follower must not starve the others */ }
      }
    });
    return store;
  }

  onLog(fn: (e: LogEntry) => void): () => void {
    this.logListeners.add(fn);
    return () => { this.logListeners.delete(fn); };
  }

  /** Called by the registry when the workload is deleted. */
  markRemoved(): void {
    this.removed = true;
    for (const fn of this.statusListeners) {
      try { fn(this); } catch { /* ignore */ }
    }
  }

  get id(): string {
    return this.spec.id;
  }

  logFile(): string {
    return this.spec.log_path ?? defaultLogFile(this.logDir, this.spec.id);
  }

  record(): WorkloadRecord {
    return { spec: this.spec, desired: this.desired, created_at: this.createdAt, updated_at: this.updatedAt };
  }

  /** Is a process running or about to be (back-off)? */
  get active(): boolean {
    return this.status === 'running' || this.status === 'restarting' || this.status === 'stopping';
  }

  onStatus(fn: (w: Workload) => void): () => void {
    this.statusListeners.add(fn);
    return () => { this.statusListeners.delete(fn); };
  }

  /** Replace the definition (the caller restarts the process when needed). */
  setSpec(spec: WorkloadSpec): void {
    const oldFile = this.logFile();
    this.spec = spec;
    this.updatedAt = new Date().toISOString();
    if (this.logFile() !== oldFile) {
      this.logs.close();
      this.logs = this.openLogs();
    } else {
      this.logs.setMaxBytes(spec.max_log_size_mb * MiB);
    }
  }

  /** An explicit start: counters reset. Nothing happens when already active. */
  start(): void {
    if (this.status === 'running' || this.status === 'stopping') return;
    this.clearRestartTimer();
    this.restarts = { restarts: 0, streak: 0 };
    this.reason = null;
    this.spawnOnce();
  }

  /** Stop the process (SIGTERM to its group, SIGKILL after stop_timeout); resolves once it is gone. */
  async stop(graceMs = this.spec.stop_timeout * 1000): Promise<void> {
    if (this.status === 'restarting') {
      this.clearRestartTimer();
      this.reason = 'stopped on request';
      this.setStatus('stopped');
      return;
    }
    if (this.status !== 'running' && this.status !== 'stopping') return;
    const gone = new Promise<void>((r) => this.exitWaiters.push(r));
    if (this.status === 'running') {
      this.stopRequested = true;
      this.setStatus('stopping');
      const pid = this.pid;
      if (pid !== null) {
        this.system(`stopping: SIGTERM to process group ${pid}`);
        if (!killGroup(pid, 'SIGTERM')) this.child?.kill('SIGTERM');
        this.killTimer = setTimeout(() => {
          this.system(`still running after ${Math.round(graceMs / 100) / 10} s: SIGKILL`);
          if (!killGroup(pid, 'SIGKILL')) this.child?.kill('SIGKILL');
        }, graceMs);
        this.killTimer.unref();
      }
    } else if (this.pid !== null && graceMs < this.spec.stop_timeout * 1000) {
      // A second, more urgent stop (shutdown) while a polite one is pending.
      killGroup(this.pid, 'SIGKILL');
    }
    await gone;
  }

  async restart(): Promise<void> {
    await this.stop();
    this.start();
  }

  private spawnOnce(): void {
    const gen = ++this.gen;
    this.stopRequested = false;
    this.nextRestartAt = null;
    // exit_code and signal keep describing the last exit until the next one.
    const spec = this.spec;
    let user: ResolvedUser | null = null;
    try {
      if (spec.user) user = lookupUser(spec.user);
    } catch (err) {
      this.spawnFailed(gen, 126, (err as Error).message);
      return;
    }
    const cwd = spec.working_dir ?? '/';
    try {
      if (!statSync(cwd).isDirectory()) throw new Error('not a directory');
    } catch {
      this.spawnFailed(gen, 126, `working directory ${cwd} does not exist or is not a directory`);
      return;
    }
    const argv = resolveArgv(spec.cmd, 'auto', defaultShell());
    let child: ChildProcess;
    try {
      child = spawn(argv.file, argv.args, {
        cwd,
        env: workloadEnv(spec.env, user),
        stdio: ['ignore', 'pipe', 'pipe'],
        // Own session and process group: stop and stats reach the whole tree.
        detached: true,
        ...(user ? { uid: user.uid, gid: user.gid } : {}),
      });
    } catch (err) {
      this.spawnFailed(gen, 126, `failed to start ${spec.cmd[0]}: ${(err as Error).message}`);
      return;
    }
    this.child = child;
    this.pid = child.pid ?? null;
    this.startedAt = new Date();
    this.exitedAt = null;
    const splitters: Record<'stdout' | 'stderr', LineSplitter> = { stdout: new LineSplitter(), stderr: new LineSplitter() };
    const onData = (stream: 'stdout' | 'stderr') => (chunk: Buffer): void => {
      if (gen !== this.gen) return;
      this.appendLines(stream, splitters[stream].push(chunk));
    };
    child.stdout?.on('data', onData('stdout'));
    child.stderr?.on('data', onData('stderr'));

    let exited = false;
    let grace: NodeJS.Timeout | null = null;
    const finish = (code: number | null, signal: string | null, error: string | null): void => {
      if (gen !== this.gen || this.child !== child) return;
      if (grace) clearTimeout(grace);
      for (const s of ['stdout', 'stderr'] as const) this.appendLines(s, splitters[s].flush());
      // Keep draining pipes held by grandchildren so they never block.
      child.stdout?.resume();
      child.stderr?.resume();
      this.onExit(gen, code, signal, error);
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      // spawn failures (ENOENT, EACCES, EPERM on setuid) arrive here with no pid.
      if (exited || (this.pid !== null && !err.syscall?.startsWith('spawn'))) return;
      exited = true;
      const code = err.code === 'ENOENT' ? 127 : 126;
      const what = spec.cmd[0];
      finish(code, null, err.code === 'ENOENT' ? `command not found: ${what}` : err.code === 'EACCES' ? `permission denied: ${what}` : `failed to start ${what}: ${err.message}`);
    });
    child.on('exit', (code, signal) => {
      if (exited) return;
      exited = true;
      // The workload is its process group: stragglers go with the leader.
      if (this.pid !== null) killGroup(this.pid, 'SIGKILL');
      grace = setTimeout(() => finish(code, signal, null), PIPE_GRACE_MS);
      child.once('close', () => finish(code, signal, null));
    });
    if (this.pid !== null) {
      this.system(`started: pid ${this.pid}${this.restarts.restarts > 0 ? ` (restart ${this.restarts.restarts})` : ''}: ${spec.cmd.join(' ')}`);
      this.setStatus('running');
    }
  }

  /** A process that could not even be started is handled as an exit with `code` (127/126, as a shell says). */
  private spawnFailed(gen: number, code: number, message: string): void {
    this.startedAt = null;
    this.pid = null;
    this.onExit(gen, code, null, message);
  }

  private onExit(gen: number, code: number | null, signal: string | null, error: string | null): void {
    if (gen !== this.gen) return;
    this.child = null;
    if (this.killTimer) {
      clearTimeout(this.killTimer);
      this.killTimer = null;
    }
    const exitedAt = new Date();
    const ranMs = this.startedAt ? exitedAt.getTime() - this.startedAt.getTime() : 0;
    this.exitedAt = exitedAt;
    this.exitCode = code ?? (signal ? 128 + signalNumber(signal) : null);
    this.signal = signal;
    const requested = this.stopRequested;
    this.stopRequested = false;
    const how = error ?? (signal ? `killed by ${signal}` : `exited with code ${code}`);
    this.system(`${how} after ${(ranMs / 1000).toFixed(1)} s`);
    const decision = decide(this.spec, { code: signal ? null : code, signal, requested, ranMs }, this.restarts);
    if (decision.restart) {
      this.restarts = decision.next;
      this.nextRestartAt = new Date(Date.now() + decision.delayMs);
      const of = this.spec.max_restarts > 0 ? ` of ${this.spec.max_restarts}` : '';
      this.system(`restarting in ${(decision.delayMs / 1000).toFixed(1)} s (restart ${decision.next.restarts}${of}, restart_policy ${this.spec.restart_policy})`);
      this.reason = error;
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (this.status === 'restarting' && gen === this.gen) this.spawnOnce();
      }, decision.delayMs);
      this.restartTimer.unref();
      this.setStatus('restarting');
    } else {
      this.reason = error ?? decision.reason;
      if (!requested) this.system(`not restarting: ${decision.reason}`);
      this.setStatus(decision.status);
    }
    for (const w of this.exitWaiters.splice(0)) w();
  }

  private appendLines(stream: LogStream, lines: string[]): void {
    if (lines.length === 0) return;
    const t = new Date().toISOString();
    this.logs.append(lines.map((data): LogEntry => ({ t, stream, data })));
  }

  /** Supervisor events go into the workload's own log, as stream `system`. */
  private system(data: string): void {
    this.logs.append([{ t: new Date().toISOString(), stream: 'system', data }]);
  }

  private setStatus(s: WorkloadStatus): void {
    if (this.status === s) return;
    this.status = s;
    for (const fn of this.statusListeners) {
      try { fn(this); } catch { /* a broken listener must not break supervision */ }
    }
  }

  private clearRestartTimer(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.nextRestartAt = null;
  }

  /** Agent shutdown: stop the process, keep `desired` as it is (it comes back at the next boot). */
  async shutdown(graceMs: number): Promise<void> {
    await this.stop(Math.min(graceMs, this.spec.stop_timeout * 1000));
    this.logs.close();
  }

  view(): Record<string, unknown> {
    const s = this.spec;
    const running = this.status === 'running' || this.status === 'stopping';
    return {
      id: s.id,
      name: s.name,
      status: this.status,
      target: 'default',
      cmd: s.cmd,
      env: s.env,
      working_dir: s.working_dir,
      user: s.user,
      restart_policy: s.restart_policy,
      max_restarts: s.max_restarts,
      restart_delay: s.restart_delay,
      restart_backoff: s.restart_backoff,
      stop_timeout: s.stop_timeout,
      log_path: this.logFile(),
      max_log_size_mb: s.max_log_size_mb,
      vm_on_exit: s.vm_on_exit,
      labels: s.labels,
      annotations: s.annotations,
      enabled: s.enabled,
      desired_state: this.desired,
      pid: running ? this.pid : null,
      exit_code: this.exitCode,
      signal: this.signal,
      reason: this.reason,
      restart_count: this.restarts.restarts,
      next_restart_at: iso(this.nextRestartAt),
      started_at: iso(this.startedAt),
      exited_at: iso(this.exitedAt),
      uptime_seconds: running && this.startedAt ? Math.round((Date.now() - this.startedAt.getTime()) / 100) / 10 : 0,
      created_at: this.createdAt,
      updated_at: this.updatedAt,
    };
  }
}

/** The process environment: the agent's (HEARTH_* removed), HOME/USER of the user, then the workload's own. */
export function workloadEnv(specEnv: string[], user: ResolvedUser | null): Record<string, string> {
  const extra: Record<string, string> = {};
  if (user) {
    extra.HOME = user.home;
    if (user.name) {
      extra.USER = user.name;
      extra.LOGNAME = user.name;
    }
  }
  for (const kv of specEnv) {
    const eq = kv.indexOf('=');
    extra[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const env = childEnv(extra);
  if (!env.HOME) env.HOME = '/root';
  return env;
}
