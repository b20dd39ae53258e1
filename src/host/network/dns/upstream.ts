/**
 * How the forwarder asks its upstream resolvers, built so that an answer
 * the forwarder relays (and, for allow-listed names, turns into an egress
 * grant) can only come from the upstream that was asked, for the question
 * that was asked:
 *
 * - every query leaves with a fresh random id (the client's id is never
 *   sent upstream, so a workspace cannot predict the id it would have to
 *   forge) and the client's id is put back into the answer it receives;
 * - an answer is taken only from the asked upstream's address and port,
 *   with the id we chose, and with the same question (name, type, class);
 *   anything else on the socket is counted and ignored, and the query keeps
 *   waiting for the real answer;
 * - UDP goes out through a small pool of sockets, each on its own
 *   kernel-chosen port and replaced after a number of queries (source
 *   port entropy without a socket per query), and the number of queries in
 *   flight is capped, so a flood cannot exhaust hearthd's descriptors.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { randomInt } from 'node:crypto';
import { responseQuestion, type Question } from './wire.ts';

export interface Upstream {
  host: string;
  port: number;
}

export interface UpstreamPoolOptions {
  /** UDP sockets kept open (default 8). */
  sockets?: number;
  /** Queries a socket carries before it is replaced by one on a new port (default 2000). */
  queriesPerSocket?: number;
  /** Queries in flight across all upstreams, UDP and TCP (default 256). Beyond it: no answer (SERVFAIL). */
  maxInFlight?: number;
  timeoutMs?: number;
}

export interface UpstreamStats {
  /** Messages that arrived on a socket but did not answer a pending query (wrong source, id or question). */
  mismatched: number;
  /** Queries turned away because maxInFlight were already pending. */
  overloaded: number;
}

interface Pending {
  up: Upstream;
  question: Question;
  clientId: number;
  done(answer: Buffer | null): void;
}

interface PoolSocket {
  socket: dgram.Socket;
  pending: Map<number, Pending>;
  used: number;
  retired: boolean;
}

export class UpstreamPool {
  private readonly size: number;
  private readonly perSocket: number;
  private readonly maxInFlight: number;
  private readonly timeoutMs: number;
  private readonly slots: (PoolSocket | null)[];
  /** Every open socket, the pool's and retired ones still waiting for answers. */
  private readonly live = new Set<PoolSocket>();
  private inFlight = 0;
  private closed = false;
  readonly stats: UpstreamStats = { mismatched: 0, overloaded: 0 };

  constructor(opts: UpstreamPoolOptions = {}) {
    this.size = Math.max(1, opts.sockets ?? 8);
    this.perSocket = Math.max(1, opts.queriesPerSocket ?? 2000);
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 256);
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.slots = new Array<PoolSocket | null>(this.size).fill(null);
  }

  /** Ask `up` over UDP; the answer carries the client's id, or null on timeout, overload or error. */
  askUdp(msg: Buffer, question: Question, up: Upstream): Promise<Buffer | null> {
    if (!this.admit()) return Promise.resolve(null);
    const ps = this.socketFor();
    const id = freeId(ps.pending);
    const out = withId(msg, id);
    return new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => finish(null), this.timeoutMs);
      const finish = (answer: Buffer | null) => {
        if (!ps.pending.delete(id)) return;
        clearTimeout(timer);
        this.inFlight--;
        if (ps.retired && ps.pending.size === 0) this.closeSocket(ps);
        resolve(answer);
      };
      ps.pending.set(id, { up, question, clientId: question.id, done: finish });
      ps.socket.send(out, up.port, up.host, (err) => { if (err) finish(null); });
    });
  }

  /** Ask `up` over TCP (a truncated UDP answer): same id and question checks. */
  askTcp(msg: Buffer, question: Question, up: Upstream): Promise<Buffer | null> {
    if (!this.admit()) return Promise.resolve(null);
    const id = randomInt(0x10000);
    const out = withId(msg, id);
    return new Promise<Buffer | null>((resolve) => {
      const s = net.connect(up.port, up.host);
      let buf = Buffer.alloc(0);
      let settled = false;
      const done = (b: Buffer | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        s.destroy();
        this.inFlight--;
        resolve(b);
      };
      const timer = setTimeout(() => done(null), this.timeoutMs);
      s.on('error', () => done(null));
      s.on('connect', () => s.write(Buffer.concat([Buffer.from([out.length >> 8, out.length & 255]), out])));
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length > 2 + 0xffff) return done(null);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const answer = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + answer.length);
          if (answers(answer, id, question)) return done(withId(answer, question.id));
          this.stats.mismatched++;
        }
      });
    });
  }

  close(): void {
    this.closed = true;
    for (const ps of [...this.live]) {
      for (const p of [...ps.pending.values()]) p.done(null);
      this.closeSocket(ps);
    }
    this.slots.fill(null);
  }

  private closeSocket(ps: PoolSocket): void {
    if (!this.live.delete(ps)) return;
    ps.socket.close();
  }

  private admit(): boolean {
    if (this.closed || this.inFlight >= this.maxInFlight) {
      this.stats.overloaded++;
      return false;
    }
    this.inFlight++;
    return true;
  }

  /** A random socket of the pool, replaced by a fresh one (new port) once it has carried its share. */
  private socketFor(): PoolSocket {
    const i = randomInt(this.size);
    let ps = this.slots[i];
    if (!ps || ps.used >= this.perSocket) {
      if (ps) {
        ps.retired = true;
        if (ps.pending.size === 0) this.closeSocket(ps);
      }
      ps = this.openSocket();
      this.slots[i] = ps;
    }
    ps.used++;
    return ps;
  }

  private openSocket(): PoolSocket {
    const socket = dgram.createSocket('udp4');
    // An idle pool keeps nothing alive: a pending query's timer does that while it waits.
    socket.unref();
    const ps: PoolSocket = { socket, pending: new Map(), used: 0, retired: false };
    this.live.add(ps);
    socket.on('error', () => {
      for (const p of [...ps.pending.values()]) p.done(null);
    });
    socket.on('message', (b, rinfo) => {
      const id = b.length >= 2 ? b.readUInt16BE(0) : -1;
      const p = ps.pending.get(id);
      if (!p || rinfo.address !== p.up.host || rinfo.port !== p.up.port || !answers(b, id, p.question)) {
        this.stats.mismatched++;
        return;
      }
      p.done(withId(b, p.clientId));
    });
    return ps;
  }
}

/** Whether `b` is a response with our `id` to exactly `q` (name, type, class). */
function answers(b: Buffer, id: number, q: Question): boolean {
  if (b.length < 12 || b.readUInt16BE(0) !== id || !(b.readUInt16BE(2) & 0x8000)) return false;
  const rq = responseQuestion(b);
  return !!rq && rq.name === q.name && rq.type === q.type && rq.cls === q.cls;
}

/** An id not pending on this socket (65536 ids, at most maxInFlight pending: a few tries at most). */
function freeId(pending: Map<number, Pending>): number {
  for (;;) {
    const id = randomInt(0x10000);
    if (!pending.has(id)) return id;
  }
}

function withId(msg: Buffer, id: number): Buffer {
  const out = Buffer.from(msg);
  out.writeUInt16BE(id, 0);
  return out;
}
