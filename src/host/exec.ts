/**
 * Running host tools (ip, nft, runc, mount) from the host layer, and the undo
 * stack every acquisition pushes onto (E2B's Cleanup).
 *
 * `hostRun` is deliberately small: argv in, stdout/stderr out, and on failure
 * a `HostCommandError` that names the command and quotes the tool's own
 * words, so a failed `nft -f -` or `runc run` explains itself.
 */
import { spawn, type StdioOptions } from 'node:child_process';

export interface HostRunOptions {
  /** Written to stdin, then closed. */
  input?: string;
  /** Exit codes that count as success (default [0]). */
  okCodes?: number[];
  /** Kill the command (SIGKILL) after this many ms. Default 30 s. */
  timeoutMs?: number;
  /** File descriptors to hand the child as stdout/stderr instead of pipes (their output is then not collected). */
  stdoutFd?: number;
  stderrFd?: number;
  env?: NodeJS.ProcessEnv;
}

export interface HostRunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class HostCommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly code: number | null,
    readonly stderr: string,
    readonly signal: string | null = null,
  ) {
    const tail = stderr.trim().split('\n').slice(-12).join('\n');
    const how = code !== null ? `exited with ${code}` : signal ? `was killed by ${signal}` : 'failed to start';
    super(`\`${argv.join(' ')}\` ${how}${tail ? `: ${tail}` : ''}`);
    this.name = 'HostCommandError';
  }
}

/** Run a host command and collect its output; reject with HostCommandError unless its exit code is OK. */
export function hostRun(cmd: string, args: string[], opts: HostRunOptions = {}): Promise<HostRunResult> {
  const argv = [cmd, ...args];
  return new Promise((resolve, reject) => {
    const stdio: StdioOptions = [
      opts.input === undefined ? 'ignore' : 'pipe',
      opts.stdoutFd ?? 'pipe',
      opts.stderrFd ?? 'pipe',
    ];
    const child = spawn(cmd, args, { stdio, env: opts.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new HostCommandError(argv, null, e.message));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const res = { code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
      if (code !== null && (opts.okCodes ?? [0]).includes(code)) resolve(res);
      else reject(new HostCommandError(argv, code, res.stderr || res.stdout, signal));
    });
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => { /* the child exited early; its exit code tells the story */ });
      child.stdin?.end(opts.input);
    }
  });
}

/**
 * An undo stack: push the release of every acquired resource right after
 * acquiring it; on failure `unwind()` releases in reverse order. Undo steps
 * never throw out of `unwind` (their errors are collected and returned), so
 * one stuck release does not leak everything acquired before it.
 */
export class UndoStack {
  private readonly steps: { what: string; undo: () => Promise<void> | void }[] = [];

  push(what: string, undo: () => Promise<void> | void): void {
    this.steps.push({ what, undo });
  }

  get size(): number {
    return this.steps.length;
  }

  /** Forget every step (the acquisition succeeded; the resources now belong to the sandbox). */
  commit(): void {
    this.steps.length = 0;
  }

  /** Run every undo in reverse order; returns the failures ("what: message"). */
  async unwind(): Promise<string[]> {
    const failures: string[] = [];
    while (this.steps.length) {
      const step = this.steps.pop()!;
      try {
        await step.undo();
      } catch (e) {
        failures.push(`${step.what}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return failures;
  }
}
