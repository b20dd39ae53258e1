/**
 * PTY terminals (spec §22.6). Ids are decimal 0–255 because WebSocket
 * frames carry the id in one byte; freed ids are reused (lowest first,
 * starting at 1 so no client mistakes id 0 for "none"; 0 is the last
 * resort). Output goes to the scrollback ring and to the sink (the WS hub);
 * input and resize arrive from the hub. An exited terminal stays listed
 * (alive:false, exit_code) so its scrollback can be read, until it is
 * closed, its retention passes, or its id is needed.
 */
import { AgentError, notFound } from '../../core/agent-protocol/errors.ts';
import { childEnv } from '../env.ts';
import { defaultShell } from '../shell.ts';
import { loadPty, type IPty } from './pty.ts';
import { ByteRing } from './ring.ts';

export const DEFAULT_SCROLLBACK = 64 * 1024;
export const MAX_SCROLLBACK = 4 * 1024 * 1024;
const EXITED_RETENTION_MS = 10 * 60 * 1000;
const KILL_GRACE_MS = 2000;

export interface TerminalSink {
  output(id: number, data: Buffer): void;
  exit(id: number, code: number): void;
}

export interface TerminalSpec {
  cmd?: string[];
  cols: number;
  rows: number;
  scrollbackSize: number;
  env?: Record<string, string>;
  cwd?: string;
}

export class Terminal {
  alive = true;
  exitCode: number | undefined;
  readonly createdAt = new Date();
  readonly scrollback: ByteRing;
  expiry: NodeJS.Timeout | undefined;

  constructor(
    readonly id: number,
    readonly command: string[],
    public cols: number,
    public rows: number,
    scrollbackSize: number,
    readonly pty: IPty,
  ) {
    this.scrollback = new ByteRing(scrollbackSize);
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = {
      id: String(this.id),
      command: this.command,
      cols: this.cols,
      rows: this.rows,
      alive: this.alive,
      pid: this.pty.pid,
      created_at: this.createdAt.toISOString(),
      scrollback_size: this.scrollback.capacity,
    };
    if (this.exitCode !== undefined) out.exit_code = this.exitCode;
    return out;
  }
}

export function clampDim(n: number | undefined, fallback: number): number {
  if (n === undefined || !Number.isFinite(n) || n <= 0) return fallback;
  return Math.min(1000, Math.max(1, Math.floor(n)));
}

/** Parse a terminal id from the URL or a WS message: "3" or 3, 0–255. */
export function parseTerminalId(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,3}$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= 255 ? n : undefined;
}

export class TerminalService {
  private readonly terminals = new Map<number, Terminal>();

  constructor(private readonly sink: TerminalSink) {}

  async create(spec: TerminalSpec): Promise<Terminal> {
    const pty = await loadPty();
    const id = this.allocateId();
    const command = spec.cmd && spec.cmd.length > 0 ? spec.cmd : [defaultShell()];
    const env = childEnv({ TERM: 'xterm-256color', COLORTERM: 'truecolor', ...spec.env });
    let proc: IPty;
    try {
      proc = pty.spawn(command[0] as string, command.slice(1), {
        name: 'xterm-256color',
        cols: spec.cols,
        rows: spec.rows,
        cwd: spec.cwd ?? env.HOME ?? '/',
        env,
        // Raw bytes both ways: output may be any binary, and UTF-8 may split across reads.
        encoding: null,
      });
    } catch (err) {
      throw new AgentError('bad_request', `Cannot start terminal command ${command[0]}: ${(err as Error).message}`);
    }
    const term = new Terminal(id, command, spec.cols, spec.rows, spec.scrollbackSize, proc);
    this.terminals.set(id, term);
    proc.onData((d: string | Buffer) => {
      const buf = typeof d === 'string' ? Buffer.from(d, 'utf8') : d;
      term.scrollback.append(buf);
      this.sink.output(id, buf);
    });
    proc.onExit(({ exitCode, signal }) => {
      term.alive = false;
      term.exitCode = signal ? 128 + signal : exitCode;
      this.sink.exit(id, term.exitCode);
      term.expiry = setTimeout(() => this.forget(id), EXITED_RETENTION_MS);
      term.expiry.unref();
    });
    return term;
  }

  list(): Terminal[] {
    return [...this.terminals.values()];
  }

  get(id: string | number): Terminal {
    const n = parseTerminalId(id);
    const term = n === undefined ? undefined : this.terminals.get(n);
    if (!term) throw notFound(`No terminal with id ${id}`, { terminal_id: String(id) });
    return term;
  }

  /** Input from a WS binary frame; unknown or dead terminals are ignored. */
  write(id: number, data: Buffer): void {
    const term = this.terminals.get(id);
    if (!term || !term.alive) return;
    // node-pty's types say string; with encoding:null it writes Buffers as bytes.
    (term.pty.write as (d: string | Buffer) => void)(data);
  }

  resize(id: number, cols: number, rows: number): void {
    const term = this.terminals.get(id);
    if (!term || !term.alive) return;
    term.cols = clampDim(cols, term.cols);
    term.rows = clampDim(rows, term.rows);
    try { term.pty.resize(term.cols, term.rows); } catch { /* exited meanwhile */ }
  }

  close(id: string | number): Terminal {
    const term = this.get(id);
    this.kill(term);
    this.forget(term.id);
    return term;
  }

  shutdown(): void {
    for (const term of this.terminals.values()) this.kill(term);
    for (const id of [...this.terminals.keys()]) this.forget(id);
  }

  private kill(term: Terminal): void {
    if (!term.alive) return;
    const pid = term.pty.pid;
    // SIGHUP is what a closing terminal sends; SIGKILL the session if it lingers.
    try { process.kill(-pid, 'SIGHUP'); } catch { try { term.pty.kill('SIGHUP'); } catch { /* gone */ } }
    const timer = setTimeout(() => {
      if (term.alive) try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
    }, KILL_GRACE_MS);
    timer.unref();
  }

  private forget(id: number): void {
    const term = this.terminals.get(id);
    if (term?.expiry) clearTimeout(term.expiry);
    this.terminals.delete(id);
  }

  private allocateId(): number {
    for (let i = 1; i <= 255; i++) if (!this.terminals.has(i)) return i;
    if (!this.terminals.has(0)) return 0;
    // Every id is taken: reclaim the oldest exited terminal, if any.
    const exited = this.list().filter((t) => !t.alive).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())[0];
    if (exited) {
      this.forget(exited.id);
      return exited.id;
    }
    throw new AgentError('limit_reached', 'All 256 terminal ids are in use; close a terminal first');
  }
}
