/**
 * Hearth's DNS forwarder: the one resolver workspaces are given
 * (`nameserver <gateway>`), listening on the bridge's gateway address,
 * UDP and TCP port 53. It is how hostname egress is enforced:
 *
 * - a workspace with open egress gets plain forwarding;
 * - a workspace with an egress allow-list may resolve only the names on it:
 *   the answer's addresses are granted to that workspace in the nft
 *   `egress_dns` set *before* the answer is relayed, so its first
 *   connection passes, and exactly the addresses it was told are allowed
 *   (round-robin and geo DNS included, which resolving on our own could
 *   never match);
 * - any other name is answered NXDOMAIN without asking anyone, so DNS is
 *   no way out of an air-gapped workspace (tunnelling).
 *
 * Upstreams are the host's resolvers (loopback ones work: this runs on the
 * host) or `--dns-upstream`, asked through `UpstreamPool` (random ids,
 * question matching, a bounded socket pool: see upstream.ts). The
 * decisions are core's `dnsVerdict`.
 *
 * Each workspace address has a query budget (a token bucket; REFUSED when
 * spent) and TCP connections are capped per address and in total, so one
 * workspace cannot flood the upstreams or hearthd's descriptors.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import { dnsVerdict, normalizeHostname, type NetworkPolicy } from '../../../core/network-policy.ts';
import { INTERNAL_NAME_TTL_S } from '../../../core/internal-plane.ts';
import { RateLimiter } from '../../../core/rate-limit.ts';
import { answerA, parseAnswer, parseQuery, reply, RCODE_NXDOMAIN, RCODE_NOERROR, RCODE_REFUSED, RCODE_SERVFAIL, TYPE_AAAA, TYPE_A, type AnswerA, type Question } from './wire.ts';
import { UpstreamPool, type Upstream, type UpstreamPoolOptions } from './upstream.ts';

export type { Upstream } from './upstream.ts';

export interface DnsForwarderOptions {
  listen: string;
  port?: number;
  upstreams: Upstream[];
  /** The policy of the workspace with this address (undefined: not a workspace: refused). */
  policyOf(ip: string): NetworkPolicy | undefined;
  /** Allow `src` the answer's addresses for `name` (nft), before the answer is relayed. */
  grant(src: string, name: string, answers: AnswerA[]): Promise<void>;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  timeoutMs?: number;
  /** Queries a workspace may send at once and per second (default 200 and 100). */
  queryBurst?: number;
  queriesPerSecond?: number;
  /** TCP connections per workspace address and in total (default 8 and 256). */
  tcpPerSource?: number;
  tcpTotal?: number;
  /** The upstream socket pool (sockets, queries per socket, queries in flight). */
  pool?: Omit<UpstreamPoolOptions, 'timeoutMs'>;
  /**
   * Names the forwarder answers itself (Hearth's own, src/core/internal-plane.ts:
   * name → address), under the same verdict as any name: never forwarded upstream.
   */
  localNames?: () => ReadonlyMap<string, string>;
}

/** `1.2.3.4`, `1.2.3.4:5353` → upstream. */
export function parseUpstream(s: string): Upstream {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(s.trim());
  if (!m) throw new Error(`DNS upstream ${JSON.stringify(s)} must be IPv4[:port]`);
  return { host: m[1]!, port: m[2] ? Number(m[2]) : 53 };
}

/** The host's resolvers from resolv.conf text (IPv4 only; loopback kept: the forwarder runs on the host). */
export function upstreamsFromResolvConf(text: string): Upstream[] {
  return text.split('\n').map((l) => /^\s*nameserver\s+(\d{1,3}(?:\.\d{1,3}){3})\s*$/.exec(l)?.[1]).filter((x): x is string => !!x).map((host) => ({ host, port: 53 }));
}

export async function hostUpstreams(): Promise<Upstream[]> {
  return upstreamsFromResolvConf(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''));
}

export class DnsForwarder {
  private udp: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly tcpBySource = new Map<string, number>();
  private readonly budget: RateLimiter;
  private readonly upstream: UpstreamPool;
  readonly stats = { queries: 0, refused: 0, learned: 0, failed: 0, limited: 0 };

  constructor(private readonly opts: DnsForwarderOptions) {
    this.budget = new RateLimiter({ burst: opts.queryBurst ?? 200, perSecond: opts.queriesPerSecond ?? 100 });
    this.upstream = new UpstreamPool({ ...opts.pool, timeoutMs: opts.timeoutMs });
  }

  /** Answers the upstream pool ignored (wrong source, id or question) and queries it turned away. */
  get upstreamStats() {
    return this.upstream.stats;
  }

  async start(): Promise<void> {
    const port = this.opts.port ?? 53;
    const udp = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, this.opts.listen, () => { udp.off('error', reject); resolve(); });
    });
    udp.on('error', (e) => this.opts.log?.('dns udp error', { err: e }));
    udp.on('message', (msg, rinfo) => {
      void this.handle(msg, rinfo.address, 'udp').then((out) => { if (out) udp.send(out, rinfo.port, rinfo.address); });
    });
    this.udp = udp;
    const tcp = net.createServer((sock) => this.serveTcp(sock));
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, this.opts.listen, () => { tcp.off('error', reject); resolve(); });
    });
    this.tcp = tcp;
  }

  async close(): Promise<void> {
    this.udp?.close();
    this.udp = null;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r()));
    this.tcp = null;
    this.upstream.close();
  }

  private serveTcp(sock: net.Socket): void {
    const src = sock.remoteAddress?.replace(/^::ffff:/, '') ?? '';
    const mine = this.tcpBySource.get(src) ?? 0;
    if (mine >= (this.opts.tcpPerSource ?? 8) || this.sockets.size >= (this.opts.tcpTotal ?? 256)) {
      this.stats.limited++;
      sock.destroy();
      return;
    }
    this.tcpBySource.set(src, mine + 1);
    this.sockets.add(sock);
    sock.on('close', () => {
      this.sockets.delete(sock);
      const n = (this.tcpBySource.get(src) ?? 1) - 1;
      if (n > 0) this.tcpBySource.set(src, n);
      else this.tcpBySource.delete(src);
    });
    sock.on('error', () => undefined);
    sock.setTimeout(10_000, () => sock.destroy());
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        void this.handle(Buffer.from(msg), src, 'tcp').then((out) => {
          if (out && !sock.destroyed) sock.write(Buffer.concat([Buffer.from([out.length >> 8, out.length & 255]), out]));
        });
      }
    });
  }

  /** One query from `src`: the bytes to answer with, or null to stay silent. */
  async handle(msg: Buffer, src: string, via: 'udp' | 'tcp'): Promise<Buffer | null> {
    const q = parseQuery(msg);
    if (!q) return null;
    this.stats.queries++;
    if (!this.budget.take(src, Date.now())) {
      this.stats.limited++;
      return reply(msg, q, RCODE_REFUSED);
    }
    const verdict = dnsVerdict(this.opts.policyOf(src), q.name);
    if (verdict === 'refuse') {
      this.stats.refused++;
      return reply(msg, q, RCODE_NXDOMAIN);
    }
    // Workspaces are IPv4-only: an allow-listed name has no IPv6 answer to learn.
    if (verdict === 'learn' && q.type === TYPE_AAAA) return reply(msg, q, RCODE_NOERROR);
    const local = this.opts.localNames?.().get(normalizeHostname(q.name));
    if (local !== undefined) return this.answerLocal(msg, q, src, verdict, local);
    const answer = await this.forward(msg, q, via);
    if (!answer) {
      this.stats.failed++;
      return reply(msg, q, RCODE_SERVFAIL);
    }
    if (verdict === 'learn' && q.type === TYPE_A) {
      try {
        const parsed = parseAnswer(answer);
        if (parsed.a.length) {
          await this.opts.grant(src, q.name, parsed.a);
          this.stats.learned += parsed.a.length;
        }
      } catch (e) {
        // Never hand out an address the firewall does not know about.
        this.opts.log?.('dns grant failed', { src, name: q.name, err: e });
        return reply(msg, q, RCODE_SERVFAIL);
      }
    }
    return answer;
  }

  /** One of Hearth's own names: answered here (A only), granted like a forwarded answer when the egress list names it. */
  private async answerLocal(msg: Buffer, q: Question, src: string, verdict: 'pass' | 'learn', ip: string): Promise<Buffer> {
    if (q.type !== TYPE_A) return reply(msg, q, RCODE_NOERROR);
    if (verdict === 'learn') {
      try {
        await this.opts.grant(src, normalizeHostname(q.name), [{ ip, ttl: INTERNAL_NAME_TTL_S }]);
        this.stats.learned++;
      } catch (e) {
        this.opts.log?.('dns grant failed', { src, name: q.name, err: e });
        return reply(msg, q, RCODE_SERVFAIL);
      }
    }
    return answerA(msg, q, [ip], INTERNAL_NAME_TTL_S);
  }

  private async forward(msg: Buffer, q: Question, via: 'udp' | 'tcp'): Promise<Buffer | null> {
    // UDP to the upstream first; a truncated answer is fetched again over TCP for a TCP client (a UDP one retries itself).
    for (const up of this.opts.upstreams) {
      const r = await this.upstream.askUdp(msg, q, up);
      if (!r) continue;
      if (via === 'tcp' && (r.readUInt16BE(2) & 0x0200)) return (await this.upstream.askTcp(msg, q, up)) ?? r;
      return r;
    }
    return null;
  }
}
