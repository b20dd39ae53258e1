/** Spawning host tools for builds: collect output, stream lines, fail with the tool's own words. */
import { spawn } from 'node:child_process';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, then closed. */
  input?: string;
  /** Called for every complete output line (progress streaming). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Resolve instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(readonly command: string, readonly code: number | null, readonly stderr: string) {
    const tail = stderr.trim().split('\n').slice(-15).join('\n');
    super(`${command} exited with ${code ?? 'a signal'}${tail ? `:\n${tail}` : ''}`);
    this.name = 'CommandError';
  }
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const partial = { stdout: '', stderr: '' };
    const feed = (stream: 'stdout' | 'stderr', chunk: Buffer) => {
      (stream === 'stdout' ? out : err).push(chunk);
      if (!opts.onLine) return;
      const text = partial[stream] + chunk.toString('utf8');
      const lines = text.split(/\r?\n|\r/);
      partial[stream] = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) opts.onLine(line, stream);
    };
    child.stdout?.on('data', (c: Buffer) => feed('stdout', c));
    child.stderr?.on('data', (c: Buffer) => feed('stderr', c));
    child.on('error', (e) => reject(new CommandError(`${cmd}`, null, e.message)));
    child.on('close', (code) => {
      for (const s of ['stdout', 'stderr'] as const) if (opts.onLine && partial[s].trim()) opts.onLine(partial[s], s);
      const res = { code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
      if (code !== 0 && !opts.allowFailure) reject(new CommandError([cmd, ...args].join(' '), code, res.stderr || res.stdout));
      else resolve(res);
    });
    if (opts.input !== undefined && child.stdin) child.stdin.end(opts.input);
  });
}
