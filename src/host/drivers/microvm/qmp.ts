/**
 * A minimal QMP client: connect to QEMU's control socket, negotiate
 * capabilities, run commands one at a time, collect events. One short-lived
 * connection per driver operation: QEMU's `-qmp ...,server=on` accepts a new
 * client after the previous one left, so nothing about a VM is kept in
 * hearthd's memory.
 */
import net from 'node:net';

export class QmpError extends Error {
  constructor(readonly command: string, readonly klass: string, message: string) {
    super(`QMP ${command}: ${klass}: ${message}`);
    this.name = 'QmpError';
  }
}

type Json = Record<string, unknown>;

export class Qmp {
  private buf = '';
  private pending: { resolve: (v: unknown) => void; reject: (e: Error) => void; command: string } | null = null;
  private greeting: ((v: unknown) => void) | null = null;
  readonly events: Json[] = [];
  private closedErr: Error | null = null;

  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => this.onData(chunk));
    const fail = (e: Error) => {
      this.closedErr = e;
      this.pending?.reject(e);
      this.pending = null;
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('QMP connection closed (QEMU exited?)')));
  }

  static async connect(path: string, timeoutMs = 5000): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const q = new Qmp(sock);
        await new Promise((resolve, reject) => {
          q.greeting = resolve;
          const t = setTimeout(() => reject(new Error('no QMP greeting')), Math.max(1000, deadline - Date.now()));
          sock.once('close', () => { clearTimeout(t); reject(new Error('QMP closed before greeting')); });
        }).finally(() => { q.greeting = null; });
        await q.execute('qmp_capabilities');
        return q;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`cannot connect to QMP at ${path}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let i;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i).trim();
      this.buf = this.buf.slice(i + 1);
      if (!line) continue;
      let msg: Json;
      try {
        msg = JSON.parse(line) as Json;
      } catch {
        continue;
      }
      if ('QMP' in msg) this.greeting?.(msg);
      else if ('event' in msg) this.events.push(msg);
      else if (this.pending) {
        const p = this.pending;
        this.pending = null;
        if ('error' in msg) {
          const err = msg.error as { class?: string; desc?: string };
          p.reject(new QmpError(p.command, err.class ?? 'Error', err.desc ?? 'unknown error'));
        } else p.resolve(msg.return);
      }
    }
  }

  execute<T = unknown>(command: string, args?: Json): Promise<T> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    if (this.pending) return Promise.reject(new Error(`QMP ${command}: another command is in flight`));
    return new Promise<T>((resolve, reject) => {
      this.pending = { resolve: resolve as (v: unknown) => void, reject, command };
      this.sock.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    });
  }

  /** Poll `query-status` until `want(status)` or the deadline. */
  async waitStatus(want: (status: string) => boolean, timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (let delay = 2; ; delay = Math.min(delay * 2, 25)) {
      const { status } = await this.execute<{ status: string }>('query-status');
      if (want(status)) return status;
      if (Date.now() > deadline) throw new Error(`VM status stayed ${status} for ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  close(): void {
    this.sock.destroy();
  }
}
