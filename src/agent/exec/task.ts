/**
 * One exec task: a child process in its own process group, its retained
 * output and its live subscribers. The task outlives any HTTP connection
 * that watches it (spec §22.5: dropping the stream must not kill it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { childEnv } from '../env.ts';
import { defaultShell } from '../shell.ts';
import { AgentError } from '../../core/agent-protocol/errors.ts';
import { resolveArgv } from './argv.ts';
import { OutputLog, type StreamName } from './output.ts';
import type { ExecSpec } from './request.ts';

export type TaskStatus = 'pending' | 'running' | 'exited' | 'failed';

export type TaskEvent =
  | { type: 'output'; stream: StreamName; data: Buffer }
  | { type: 'exit' };

/** How long to wait for the pipes to close after the process exited. */
const PIPE_GRACE_MS = 250;

function signalNumber(name: string): number {
  return (osConstants.signals as Record<string, number>)[name] ?? 0;
}

export class ExecTask {
  status: TaskStatus = 'pending';
  pid: number | undefined;
  exitCode: number | undefined;
  signal: string | undefined;
  error: string | undefined;
  timedOut = false;
  readonly createdAt = new Date();
  startedAt: Date | undefined;
  exitedAt: Date | undefined;
  readonly output = new OutputLog();
  /** The mode actually used (auto resolved). */
  mode: 'shell' | 'direct' = 'direct';

  private child: ChildProcess | undefined;
  private readonly listeners = new Set<(ev: TaskEvent) => void>();
  private timeoutTimer: NodeJS.Timeout | undefined;
  private stdinOpen = false;

  constructor(
    readonly id: string,
    readonly spec: ExecSpec,
    private readonly onFinished: (task: ExecTask) => void,
  ) {}

  get finished(): boolean {
    return this.status === 'exited' || this.status === 'failed';
  }

  /** Spawn the process. `keepStdin` leaves stdin open for POST /exec/:id/input. */
  start(keepStdin: boolean): void {
    const argv = resolveArgv(this.spec.cmd, this.spec.mode, defaultShell());
    this.mode = argv.mode;
    let child: ChildProcess;
    try {
      child = spawn(argv.file, argv.args, {
        cwd: this.spec.cwd ?? process.cwd(),
        env: childEnv(this.spec.env),
        stdio: ['pipe', 'pipe', 'pipe'],
        // Own process group (setsid): timeouts and kills reach the whole tree.
        detached: true,
      });
    } catch (err) {
      this.fail(err as NodeJS.ErrnoException);
      return;
    }
    this.child = child;
    this.status = 'running';
    this.startedAt = new Date();
    this.pid = child.pid;

    child.stdin?.on('error', () => { /* EPIPE after the child exited: nothing to do */ });
    child.stdout?.on('data', (d: Buffer) => this.onData('stdout', d));
    child.stderr?.on('data', (d: Buffer) => this.onData('stderr', d));
    child.on('error', (err: NodeJS.ErrnoException) => {
      // spawn failures (ENOENT, EACCES) arrive here with no pid.
      if (this.pid === undefined || err.syscall?.startsWith('spawn')) this.fail(err);
    });

    let exited = false;
    let grace: NodeJS.Timeout | undefined;
    child.on('exit', (code, signal) => {
      if (this.finished) return; // spawn failure already reported
      exited = true;
      this.exitCode = code ?? undefined;
      this.signal = signal ?? undefined;
      // Wait for buffered output, but not for grandchildren that keep the pipes.
      grace = setTimeout(() => this.finish(), PIPE_GRACE_MS);
    });
    child.on('close', () => {
      if (grace) clearTimeout(grace);
      if (exited) this.finish();
    });

    if (this.spec.timeoutSeconds !== undefined) {
      this.timeoutTimer = setTimeout(() => {
        this.timedOut = true;
        this.kill('SIGKILL');
      }, this.spec.timeoutSeconds * 1000);
    }

    this.stdinOpen = true;
    if (this.spec.stdin !== undefined) child.stdin?.write(this.spec.stdin);
    if (!keepStdin || this.spec.stdin !== undefined) this.closeStdin();
  }

  subscribe(fn: (ev: TaskEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Write to stdin; resolves with the bytes accepted. */
  write(data: Buffer, eof: boolean): Promise<number> {
    const stdin = this.child?.stdin;
    if (this.finished || !stdin) throw new AgentError('task_not_running', `Task ${this.id} is not running`);
    if (!this.stdinOpen || stdin.destroyed || stdin.writableEnded) {
      throw new AgentError('task_not_running', `Task ${this.id} has its stdin closed`);
    }
    return new Promise((resolve, reject) => {
      const done = (err?: Error | null): void => {
        if (err) reject(new AgentError('task_not_running', `Task ${this.id} stdin: ${err.message}`));
        else resolve(data.length);
      };
      if (data.length === 0) {
        if (eof) this.closeStdin();
        resolve(0);
        return;
      }
      stdin.write(data, (err) => {
        if (eof) this.closeStdin();
        done(err);
      });
    });
  }

  closeStdin(): void {
    this.stdinOpen = false;
    this.child?.stdin?.end();
  }

  /** Signal the whole process group; no-op once finished. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.finished || this.pid === undefined) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      try { this.child?.kill(signal); } catch { /* already gone */ }
    }
  }

  toJSON(withOutput: boolean): Record<string, unknown> {
    const out: Record<string, unknown> = {
      id: this.id,
      command: this.spec.cmd,
      exec_mode: this.mode,
      status: this.status,
      created_at: this.createdAt.toISOString(),
      ttl_seconds: this.spec.ttlSeconds,
    };
    if (this.pid !== undefined) out.guest_pid = this.pid;
    if (this.startedAt) out.started_at = this.startedAt.toISOString();
    if (this.exitedAt) out.exited_at = this.exitedAt.toISOString();
    if (this.exitCode !== undefined) out.exit_code = this.exitCode;
    if (this.signal) out.signal = this.signal;
    if (this.error) out.error = this.error;
    if (this.timedOut) out.timed_out = true;
    if (this.spec.cwd) out.cwd = this.spec.cwd;
    if (withOutput) {
      out.stdout = this.output.text('stdout');
      out.stderr = this.output.text('stderr');
    }
    out.stdout_bytes = this.output.bytes.stdout;
    out.stderr_bytes = this.output.bytes.stderr;
    if (this.output.truncated.stdout || this.output.truncated.stderr) {
      out.truncated = true;
      out.stdout_truncated = this.output.truncated.stdout;
      out.stderr_truncated = this.output.truncated.stderr;
    }
    return out;
  }

  /** The `exit` SSE event body. */
  exitEvent(): Record<string, unknown> {
    const ev: Record<string, unknown> = { exit_code: this.exitCode ?? -1, status: this.status };
    if (this.pid !== undefined) ev.pid = this.pid;
    if (this.signal) ev.signal = this.signal;
    if (this.error) ev.error = this.error;
    if (this.timedOut) ev.timed_out = true;
    return ev;
  }

  private onData(stream: StreamName, data: Buffer): void {
    if (this.finished) return; // grandchildren writing after exit: drained, not kept
    this.output.append(stream, data);
    this.emit({ type: 'output', stream, data });
  }

  private fail(err: NodeJS.ErrnoException): void {
    if (this.finished) return;
    this.status = 'failed';
    if (this.pid === undefined) this.startedAt = undefined;
    // What a shell would answer: 127 not found, 126 found but not executable.
    this.exitCode = err.code === 'ENOENT' ? 127 : err.code === 'EACCES' || err.code === 'ENOEXEC' ? 126 : 1;
    const what = this.spec.cmd[0];
    this.error = err.code === 'ENOENT'
      ? `command not found: ${what}`
      : err.code === 'EACCES' ? `permission denied: ${what}` : `failed to start ${what}: ${err.message}`;
    this.settle();
  }

  private finish(): void {
    if (this.finished) return;
    this.status = 'exited';
    if (this.exitCode === undefined && this.signal) this.exitCode = 128 + signalNumber(this.signal);
    if (this.timedOut) this.error = `timed out after ${this.spec.timeoutSeconds} s`;
    this.settle();
  }

  private settle(): void {
    this.exitedAt = new Date();
    if (this.timeoutTimer) clearTimeout(this.timeoutTimer);
    this.stdinOpen = false;
    // Keep draining pipes held by grandchildren, so they never block on a full pipe.
    this.child?.stdout?.resume();
    this.child?.stderr?.resume();
    this.emit({ type: 'exit' });
    this.listeners.clear();
    if (!this.spec.keepLogs) this.output.clear();
    this.onFinished(this);
  }

  private emit(ev: TaskEvent): void {
    for (const fn of this.listeners) {
      try { fn(ev); } catch { /* one bad subscriber must not starve the others */ }
    }
  }
}
