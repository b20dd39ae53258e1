/**
 * The host side of workspace networking: one bridge, one nftables table pair
 * (see nft.ts), and per workspace a named network namespace joined to the
 * bridge by a veth pair. Every name and address comes from the workspace's
 * Slot (slot.ts), so nothing here keeps state in memory: after a restart the
 * same calls find the same links, namespaces and set elements.
 *
 * Cost model: each `ip`/`nft` invocation is a process spawn (10-25 ms on the
 * development VM), so attach uses exactly three: one `ip -batch` on the host
 * (netns + veth + bridge port) concurrently with one `nft -f -` transaction
 * for the set elements (`prepare`), then one `ip -n <ns> -batch` inside the
 * namespace (lo, eth0, address, route: `configure`). A driver may start its
 * sandbox between the two halves, concurrently with `configure`. OPERATIONS.md beside
 * this file is the runbook.
 */
import { AGENT_PORT } from '../../core/agent-protocol.ts';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HostCommandError, hostRun } from '../exec.ts';
import {
  DNS_GRANT_MIN_S, parseLoaded, policyElements, renderAttachElements, renderDetachElements, renderDnsGrants, renderPolicyUpdate, renderRuleset, tableName,
  type DnsGrant, type LoadedState, type PolicyElements, type RulesetOptions, type WorkspacePort,
} from './nft.ts';
import { conflictingRoute, gatewayIp, parseCidr, type NetworkPlan, type Slot } from './slot.ts';
import { allowedHostnames, type NetworkPolicy } from '../../core/network-policy.ts';
import { KeyedMutex } from '../../core/keyed-mutex.ts';

/** Where iproute2 keeps named network namespaces. */
export const NETNS_DIR = '/run/netns';

export type NetworkOp = 'plan' | 'ensure' | 'attach' | 'detach' | 'policy' | 'sync' | 'dns' | 'teardown' | 'list';

export class NetworkError extends Error {
  constructor(readonly op: NetworkOp, message: string, readonly hint?: string, options?: { cause?: unknown }) {
    super(`network ${op}: ${message}`, options);
    this.name = 'NetworkError';
  }
}

export interface HostNetworkOptions {
  /** The guest agent's port: only the host may reach it. Default AGENT_PORT. */
  agentPort?: number;
  /** Hearth's DNS forwarder listens on the gateway (opens 53 to it in the input chain). Default false. */
  dns?: boolean;
  /** SNAT address for workspace egress without a per-workspace one (`--outbound-ip`). Default: masquerade. */
  outboundIp?: string | null;
  ipPath?: string;
  nftPath?: string;
  bridgePath?: string;
}

/**
 * Kept so drivers written against the first slice compile. The policy
 * (allow_internet, ingress, egress) is not the driver's business: LocalHost
 * applies it with setPolicy for the workspace's whole life, and a port
 * without a policy is denied everything (fail closed).
 */
export interface AttachOptions {
  /** @deprecated ignored: see setPolicy. */
  allowInternet?: boolean;
}

/** A tiny readers-writer lock: element updates share it; whole-ruleset loads take it alone. */
class RwLock {
  private readers = 0;
  private writer: Promise<void> | null = null;
  private drained: (() => void) | null = null;

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.writer) await this.writer;
    this.readers++;
    try {
      return await fn();
    } finally {
      if (--this.readers === 0) this.drained?.();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.writer) await this.writer;
    let release!: () => void;
    this.writer = new Promise((r) => { release = r; });
    try {
      if (this.readers > 0) await new Promise<void>((r) => { this.drained = r; });
      this.drained = null;
      return await fn();
    } finally {
      this.writer = null;
      release();
    }
  }
}

/** Validate a plan once, with errors that say which field is wrong. */
export function checkPlan(plan: NetworkPlan): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(plan.bridge)) throw new NetworkError('plan', `bridge name ${JSON.stringify(plan.bridge)} must be 1-15 characters of [A-Za-z0-9_.-]`);
  if (!/^[a-z][a-z0-9]{0,6}$/.test(plan.linkPrefix)) throw new NetworkError('plan', `link prefix ${JSON.stringify(plan.linkPrefix)} must be 1-7 lowercase letters/digits starting with a letter`);
  if (new RegExp(`^${plan.linkPrefix}\\d+$`).test(plan.bridge)) throw new NetworkError('plan', `bridge ${plan.bridge} would look like a workspace link (prefix ${plan.linkPrefix})`);
  parseCidr(plan.subnet);
}

/** The bridge's MAC: fixed (a bridge otherwise takes the lowest port MAC and changes it as ports come and go). */
export function bridgeMac(plan: NetworkPlan): string {
  const gw = gatewayIp(plan).split('.').map((p) => Number(p).toString(16).padStart(2, '0'));
  return ['02', '48', ...gw].join(':');
}

/** Errors that mean "already gone" for idempotent removals. */
const GONE = /Cannot find device|No such file or directory|does not exist|Cannot remove namespace file/;

export class HostNetwork {
  readonly table: string;
  private readonly ip: string;
  private readonly nft: string;
  private readonly bridge: string;
  private readonly linkRe: RegExp;
  private readonly options: RulesetOptions;
  /** Whole-ruleset loads (ensure, sync) exclude element updates, which may run together. */
  private readonly lock = new RwLock();
  /** One policy transaction at a time per workspace (the diff below depends on the last one). */
  private readonly perIp = new KeyedMutex();
  /**
   * The policy last applied per workspace address: what a policy update
   * diffs against. Mirrors the kernel sets because every write goes through
   * this object; ensure() loads it from the kernel and sync() from the store.
   */
  private readonly applied = new Map<string, { policy: NetworkPolicy | null; elements: PolicyElements }>();
  /** DNS grants already in the kernel and still fresh (src|dst|name → expiry ms): saves an nft run per repeated lookup. */
  private readonly granted = new Map<string, number>();

  constructor(readonly plan: NetworkPlan, readonly runDir: string, private readonly opts: HostNetworkOptions = {}) {
    checkPlan(plan);
    this.table = tableName(plan);
    this.ip = opts.ipPath ?? 'ip';
    this.nft = opts.nftPath ?? 'nft';
    this.bridge = opts.bridgePath ?? 'bridge';
    this.linkRe = new RegExp(`^${plan.linkPrefix}\\d+$`);
    this.options = { agentPort: opts.agentPort ?? AGENT_PORT, dns: opts.dns ?? false, outboundIp: opts.outboundIp ?? null };
  }

  /** Can this host do it? root, iproute2 with netns support, nftables. Never changes anything. */
  async probe(): Promise<{ available: boolean; reason: string }> {
    if (process.getuid?.() !== 0) return { available: false, reason: 'host networking needs root (CAP_NET_ADMIN)' };
    for (const [bin, args, pkg] of [[this.ip, ['-V'], 'iproute2'], [this.nft, ['-v'], 'nftables']] as const) {
      try {
        await hostRun(bin, [...args]);
      } catch (e) {
        return { available: false, reason: `${bin} does not run (${(e as Error).message}): apt-get install ${pkg}` };
      }
    }
    return { available: true, reason: `bridge ${this.plan.bridge} ${this.plan.subnet}, nft table ${this.table}` };
  }

  /** Path of the workspace's network namespace (what runc joins). */
  netnsPath(slot: Pick<Slot, 'hostIf'>): string {
    return join(NETNS_DIR, slot.hostIf);
  }

  /** The ruleset file last applied by ensure()/sync() (for operators; never read back). */
  get rulesetFile(): string {
    return join(this.runDir, `${this.table}.nft`);
  }

  /** The gateway address (where the DNS forwarder listens). */
  get gateway(): string {
    return gatewayIp(this.plan);
  }

  /** The SNAT address used for workspaces without their own (null: masquerade). */
  get defaultOutboundIp(): string | null {
    return this.options.outboundIp;
  }

  /**
   * Idempotently create the bridge (gateway address, up, ARP answered for
   * every workspace so their traffic is routed through the host), enable
   * IPv4 forwarding and (re)load the nftables tables. Every set element
   * already loaded is carried over (ports, policies, DNS grants), so calling
   * ensure() on a live host (hearthd restart) resets the rules without
   * cutting anyone off; sync() then makes the policies exactly the store's.
   */
  async ensure(): Promise<void> {
    const { plan } = this;
    const { prefix } = parseCidr(plan.subnet);
    try {
      const exists = await this.linkKind(plan.bridge);
      if (exists !== null && exists !== 'bridge') {
        throw new NetworkError('ensure', `${plan.bridge} exists but is a ${exists || 'plain'} link, not a bridge`, `remove it (ip link del ${plan.bridge}) or choose another bridge name`);
      }
      // A subnet another interface already routes would send workspace traffic there, silently.
      const routes = JSON.parse((await hostRun(this.ip, ['-j', '-4', 'route', 'show'])).stdout || '[]') as Array<{ dst?: string; dev?: string }>;
      const clash = conflictingRoute(plan.subnet, routes, plan.bridge);
      if (clash) {
        throw new NetworkError('ensure', `subnet ${plan.subnet} overlaps ${clash.dst}, routed on ${clash.dev}`, 'choose another subnet (hearth serve --subnet CIDR)');
      }
      const batch = [
        ...(exists === null ? [`link add name ${plan.bridge} address ${bridgeMac(plan)} type bridge stp_state 0`] : []),
        `addr replace ${gatewayIp(plan)}/${prefix} dev ${plan.bridge}`,
        `link set ${plan.bridge} up`,
      ];
      await hostRun(this.ip, ['-batch', '-'], { input: batch.join('\n') + '\n' });
      await this.bridgeSysctls();
      await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
      await this.lock.exclusive(async () => {
        const loaded = await this.loaded();
        await this.load({ ports: loaded.ports, policies: loaded.policies, dnsGrants: loaded.dnsGrants });
        this.applied.clear();
        for (const p of loaded.policies) this.applied.set(p.ip, { policy: null, elements: p });
      });
    } catch (e) {
      throw wrap('ensure', e, 'check that you are root and that iproute2 and nftables are installed (`hearth doctor`)');
    }
  }

  /**
   * Per-bridge kernel knobs (per network namespace, so tests never collide):
   * answer ARP for other workspaces with the bridge's MAC (ports are
   * isolated, so that is the only way two workspaces can talk: through the
   * host, where the policy is), at once (proxy_delay 0), without ICMP
   * redirects, and no IPv6 address for workspaces to reach the host on.
   */
  private async bridgeSysctls(): Promise<void> {
    const br = this.plan.bridge;
    const set = (file: string, v: string, required: boolean) => writeFile(file, v).catch((e: Error) => { if (required) throw e; });
    await Promise.all([
      set(`/proc/sys/net/ipv4/conf/${br}/proxy_arp_pvlan`, '1', true),
      set(`/proc/sys/net/ipv4/neigh/${br}/proxy_delay`, '0', true),
      set(`/proc/sys/net/ipv4/conf/${br}/send_redirects`, '0', false),
      set(`/proc/sys/net/ipv6/conf/${br}/disable_ipv6`, '1', false),
    ]);
  }

  /** Render and apply the whole ruleset (caller holds the exclusive lock). */
  private async load(state: { ports: WorkspacePort[]; policies: PolicyElements[]; dnsGrants: DnsGrant[] }): Promise<void> {
    const text = renderRuleset({ plan: this.plan, ...state, options: this.options });
    await hostRun(this.nft, ['-f', '-'], { input: text });
    await mkdir(this.runDir, { recursive: true });
    await writeFile(this.rulesetFile, text);
    this.granted.clear();
  }

  /**
   * Make the loaded policies exactly `policies` (every workspace the store
   * knows, running or not) in one transaction: no duplicates, no gaps.
   * Ports stay as attached, except those of addresses no workspace owns;
   * DNS grants stay when their workspace still allows that name.
   */
  async sync(policies: NetworkPolicy[]): Promise<{ policies: number; ports: number; dropped: { ports: string[]; dnsGrants: number } }> {
    try {
      return await this.lock.exclusive(async () => {
        const byIp = new Map(policies.map((p) => [p.ip, p]));
        const elements = policies.map((p) => policyElements(p, this.options));
        const loaded = await this.loaded();
        const ports = loaded.ports.filter((p) => byIp.has(p.ip));
        const dnsGrants = loaded.dnsGrants.filter((g) => {
          const p = byIp.get(g.src);
          return p !== undefined && allowedHostnames(p).includes(g.name);
        });
        await this.load({ ports, policies: elements, dnsGrants });
        this.applied.clear();
        policies.forEach((p, i) => this.applied.set(p.ip, { policy: p, elements: elements[i]! }));
        return {
          policies: policies.length, ports: ports.length,
          dropped: { ports: loaded.ports.filter((p) => !byIp.has(p.ip)).map((p) => p.hostIf), dnsGrants: loaded.dnsGrants.length - dnsGrants.length },
        };
      });
    } catch (e) {
      throw wrap('sync', e, 'check the nft table (nft list table inet ' + this.table + ')');
    }
  }

  /**
   * Apply one workspace's policy live (create, start, a PATCH of ingress,
   * egress, allow_internet or outbound IP): only the difference from the
   * last applied one, in one transaction; DNS grants for names no longer
   * allowed are revoked in the same transaction. Existing connections are
   * re-checked on their next packet, so a revocation cuts them.
   */
  async setPolicy(policy: NetworkPolicy): Promise<void> {
    const elements = policyElements(policy, this.options);
    try {
      await this.lock.shared(() => this.perIp.run(policy.ip, async () => {
        const before = this.applied.get(policy.ip);
        const allowed = new Set(allowedHostnames(policy));
        const hadNames = before?.policy === null || (before?.policy ? allowedHostnames(before.policy).some((n) => !allowed.has(n)) : false);
        const revoke = hadNames ? (await this.dnsGrantsOf(policy.ip)).filter((g) => !allowed.has(g.name)) : [];
        const text = renderPolicyUpdate(this.plan, before?.elements ?? null, elements, revoke);
        if (text) await hostRun(this.nft, ['-f', '-'], { input: text });
        this.applied.set(policy.ip, { policy, elements });
        for (const g of revoke) this.forgetGrant(g);
      }));
    } catch (e) {
      throw wrap('policy', e, `is the network set up? (HostNetwork.ensure for bridge ${this.plan.bridge})`);
    }
  }

  /** Remove a workspace's policy and DNS grants (workspace deleted). Idempotent. */
  async removePolicy(ip: string): Promise<void> {
    try {
      await this.lock.shared(() => this.perIp.run(ip, async () => {
        const before = this.applied.get(ip);
        const revoke = await this.dnsGrantsOf(ip);
        const text = renderPolicyUpdate(this.plan, before?.elements ?? null, null, revoke);
        if (text) await this.tolerantNft(text);
        this.applied.delete(ip);
        for (const g of revoke) this.forgetGrant(g);
      }));
    } catch (e) {
      throw wrap('policy', e);
    }
  }

  /** The policy applied for an address (the DNS forwarder's view). */
  policyOf(ip: string): NetworkPolicy | undefined {
    return this.applied.get(ip)?.policy ?? undefined;
  }

  /**
   * Allow `src` to reach the addresses a DNS answer gave it for `name`
   * (called by the DNS forwarder before it relays the answer, so the
   * workspace's first connection already passes). Grants last at least
   * DNS_GRANT_MIN_S, the record's TTL if longer, and are renewed by traffic.
   */
  async grantDns(src: string, name: string, answers: { ip: string; ttl: number }[]): Promise<void> {
    const now = Date.now();
    const grants = answers
      .map((a) => ({ src, dst: a.ip, name, timeoutS: Math.max(DNS_GRANT_MIN_S, a.ttl) }))
      .filter((g) => (this.granted.get(grantKey(g)) ?? 0) - now < (g.timeoutS * 1000) / 2);
    if (!grants.length) return;
    try {
      await this.lock.shared(async () => {
        await hostRun(this.nft, ['-f', '-'], { input: renderDnsGrants(this.plan, grants) });
        for (const g of grants) this.granted.set(grantKey(g), now + g.timeoutS * 1000);
      });
    } catch (e) {
      throw wrap('dns', e);
    }
  }

  private forgetGrant(g: DnsGrant): void {
    for (const k of this.granted.keys()) if (k.startsWith(`${g.src}|${g.dst}|`)) this.granted.delete(k);
  }

  private async dnsGrantsOf(ip: string): Promise<DnsGrant[]> {
    const r = await hostRun(this.nft, ['-j', 'list', 'set', 'inet', this.table, 'egress_dns'], { okCodes: [0, 1] });
    if (r.code !== 0) return [];
    return parseLoaded(r.stdout, '').dnsGrants.filter((g) => g.src === ip);
  }

  /**
   * Create the workspace's network namespace (named slot.hostIf), its veth
   * pair (host end an isolated port of the bridge; peer `eth0` inside with
   * the slot's MAC, address and default route) and its port element. Fails
   * closed: the bridge table drops every frame from a port until its
   * element exists, and forward drops everything from an address without a
   * policy. On failure everything acquired is released again.
   */
  async attach(slot: Slot, opts: AttachOptions = {}): Promise<{ netnsPath: string }> {
    try {
      const r = await this.prepare(slot, opts);
      await this.configure(slot);
      return r;
    } catch (e) {
      const err = wrap('attach', e, hintFor(e));
      await this.detach(slot).catch((u: Error) => (err.message += `; cleanup also failed: ${u.message}`));
      throw err;
    }
  }

  /**
   * attach, first half: the named namespace and the veth pair on the bridge
   * (one `ip -batch`), concurrently with the port's set element (one
   * `nft -f -`). Enough for runc to join the namespace, so a driver can start
   * its sandbox while `configure` finishes the plumbing inside. The caller
   * owns cleanup (detach) on failure.
   */
  async prepare(slot: Slot, _opts: AttachOptions = {}): Promise<{ netnsPath: string }> {
    const ns = slot.hostIf;
    const host = [
      `netns add ${ns}`,
      `link add ${ns} type veth peer name eth0 address ${slot.mac} netns ${ns}`,
      ...this.portLines(ns),
    ].join('\n') + '\n';
    await this.plug(ns, host, slot);
    return { netnsPath: this.netnsPath(slot) };
  }

  /**
   * The microvm driver's attach: a tap named slot.hostIf, an isolated port of
   * the bridge, with the same port element as a veth (the guest's NIC must
   * use slot.mac; it configures slot.ip/prefix and the gateway itself).
   * Undo with detach(slot).
   */
  async prepareTap(slot: Slot): Promise<{ tap: string; mac: string }> {
    const tap = slot.hostIf;
    const host = [`tuntap add dev ${tap} mode tap`, ...this.portLines(tap)].join('\n') + '\n';
    await this.plug(tap, host, slot);
    return { tap, mac: slot.mac };
  }

  /**
   * Bridge port, set up before it goes up: isolated (never switched to
   * another workspace port) and never flooded with unknown unicast or
   * multicast (a workspace with NET_RAW must not see the host's traffic to
   * another workspace when a forwarding entry ages out; plug() adds a static
   * one).
   */
  private portLines(link: string): string[] {
    return [`link set ${link} master ${this.plan.bridge}`, `link set ${link} type bridge_slave isolated on flood off mcast_flood off`, `link set ${link} up`];
  }

  private async plug(link: string, batch: string, slot: Slot): Promise<void> {
    const links = async () => {
      try {
        await hostRun(this.ip, ['-batch', '-'], { input: batch });
      } catch (e) {
        if (!(e instanceof HostCommandError) || !/File exists/.test(e.stderr)) throw e;
        // Leftover from a crash: remove it and try once more.
        await this.removeLinks(link);
        await hostRun(this.ip, ['-batch', '-'], { input: batch });
      }
      // The workspace's MAC lives on this port for good: host-to-workspace frames never depend on learning.
      await hostRun(this.bridge, ['fdb', 'replace', slot.mac, 'dev', link, 'master', 'static']);
    };
    const port: WorkspacePort = { hostIf: link, ip: slot.ip, mac: slot.mac };
    const element = () => this.lock.shared(() => hostRun(this.nft, ['-f', '-'], { input: renderAttachElements(this.plan, port) }));
    const results = await Promise.allSettled([links(), element()]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw wrap('attach', failed.reason, hintFor(failed.reason));
  }

  /**
   * attach, second half (one `ip -n <ns> -batch`): lo up, eth0's address and
   * the default route. The caller owns cleanup (detach) on failure.
   */
  async configure(slot: Slot): Promise<void> {
    const inside = [
      'link set lo up',
      'link set eth0 addrgenmode none',
      `addr add ${slot.ip}/${slot.prefix} dev eth0`,
      'link set eth0 up',
      `route add default via ${slot.gateway} dev eth0`,
    ].join('\n') + '\n';
    try {
      await hostRun(this.ip, ['-n', slot.hostIf, '-batch', '-'], { input: inside });
    } catch (e) {
      throw wrap('attach', e, hintFor(e));
    }
  }

  /** Remove the workspace's port element, veth or tap, and namespace. Idempotent. The policy stays (removePolicy). */
  async detach(slot: Slot): Promise<void> {
    try {
      await Promise.all([this.removePort(slot), this.removeLinks(slot.hostIf)]);
    } catch (e) {
      throw wrap('detach', e);
    }
  }

  /**
   * Remove everything this plan owns on the host: both nft tables, every
   * workspace link and namespace with the plan's prefix, and the bridge.
   * IPv4 forwarding is left on (other software may rely on it).
   */
  async teardown(): Promise<void> {
    try {
      const t = this.table;
      await this.lock.exclusive(() => hostRun(this.nft, ['-f', '-'], { input: `table inet ${t}\ndelete table inet ${t}\ntable bridge ${t}\ndelete table bridge ${t}\n` }));
      this.applied.clear();
      this.granted.clear();
      for (const name of await this.listAttached()) await this.removeLinks(name);
      await this.tolerant(['link del ' + this.plan.bridge]);
    } catch (e) {
      throw wrap('teardown', e);
    }
  }

  /** Names (slot.hostIf) of the plan's workspace links and namespaces present on the host, for reconcile. */
  async listAttached(): Promise<string[]> {
    try {
      const { stdout } = await hostRun(this.ip, ['-j', 'link', 'show']);
      const links = (JSON.parse(stdout || '[]') as { ifname: string }[]).map((l) => l.ifname);
      const { stdout: nsOut } = await hostRun(this.ip, ['-j', 'netns', 'list']);
      const nss = (JSON.parse(nsOut || '[]') as { name: string }[]).map((n) => n.name);
      const names = new Set([...links, ...nss].filter((n) => this.linkRe.test(n)));
      return [...names].sort((a, b) => Number(a.slice(this.plan.linkPrefix.length)) - Number(b.slice(this.plan.linkPrefix.length)));
    } catch (e) {
      throw wrap('list', e);
    }
  }

  /**
   * Slot indexes of the workspace links that are ports of this plan's
   * bridge: provably this instance's (a name alone could be another plan's
   * with an overlapping prefix).
   */
  async bridgePortSlots(): Promise<number[]> {
    const r = await hostRun(this.ip, ['-j', 'link', 'show', 'master', this.plan.bridge], { okCodes: [0, 1] });
    if (r.code !== 0) return []; // no bridge: no ports
    const names = (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname).filter((n) => this.linkRe.test(n));
    return names.map((n) => Number(n.slice(this.plan.linkPrefix.length))).filter((i) => Number.isSafeInteger(i)).sort((a, b) => a - b);
  }

  /** Everything loaded in the two tables (empty when they do not exist yet). */
  async loaded(): Promise<LoadedState> {
    const t = this.table;
    const [inet, bridge] = await Promise.all([
      hostRun(this.nft, ['-j', 'list', 'table', 'inet', t], { okCodes: [0, 1] }),
      hostRun(this.nft, ['-j', 'list', 'table', 'bridge', t], { okCodes: [0, 1] }),
    ]);
    return parseLoaded(inet.code === 0 ? inet.stdout : '', bridge.code === 0 ? bridge.stdout : '');
  }

  /** IPv4 addresses of this host's interfaces other than the bridge (candidates for an outbound IP). */
  async hostAddresses(): Promise<string[]> {
    const { stdout } = await hostRun(this.ip, ['-j', '-4', 'addr', 'show']);
    const links = JSON.parse(stdout || '[]') as { ifname: string; addr_info?: { local?: string; scope?: string }[] }[];
    return links.filter((l) => l.ifname !== this.plan.bridge && !this.linkRe.test(l.ifname))
      .flatMap((l) => (l.addr_info ?? []).filter((a) => a.scope === 'global' && a.local).map((a) => a.local!));
  }

  private async linkKind(name: string): Promise<string | null> {
    const r = await hostRun(this.ip, ['-j', '-d', 'link', 'show', 'dev', name], { okCodes: [0, 1, 255] });
    if (r.code !== 0) return null;
    const [link] = JSON.parse(r.stdout || '[]') as { linkinfo?: { info_kind?: string } }[];
    return link?.linkinfo?.info_kind ?? '';
  }

  private async removePort(slot: Pick<Slot, 'hostIf' | 'ip' | 'mac'>): Promise<void> {
    await this.lock.shared(() => this.tolerantNft(renderDetachElements(this.plan, slot)));
  }

  /** nft -f where a missing table means there is nothing to remove. */
  private async tolerantNft(text: string): Promise<void> {
    const r = await hostRun(this.nft, ['-f', '-'], { input: text, okCodes: [0, 1] });
    if (r.code !== 0 && !/No such file or directory/.test(r.stderr)) throw new HostCommandError([this.nft, '-f', '-'], r.code, r.stderr);
  }

  /** Delete the host veth end (synchronously removes its peer) or tap, then the namespace. */
  private async removeLinks(ns: string): Promise<void> {
    await this.tolerant([`link del ${ns}`, `netns del ${ns}`]);
  }

  /** Run an `ip -force -batch`, ignoring "already gone" errors only. */
  private async tolerant(lines: string[]): Promise<void> {
    const r = await hostRun(this.ip, ['-force', '-batch', '-'], { input: lines.join('\n') + '\n', okCodes: [0, 1, 2, 255] });
    if (r.code === 0) return;
    const real = r.stderr.split('\n').filter((l) => l.trim() && !GONE.test(l) && !/^Command failed/.test(l));
    if (real.length) throw new HostCommandError([this.ip, '-force', '-batch', '-'], r.code, `${lines.join('; ')}: ${real.join('\n')}`);
  }
}

function grantKey(g: Pick<DnsGrant, 'src' | 'dst' | 'name'>): string {
  return `${g.src}|${g.dst}|${g.name}`;
}

function hintFor(e: unknown): string | undefined {
  const text = e instanceof HostCommandError ? e.stderr : String(e);
  if (/Cannot find device "?\S+"?|master/.test(text)) return 'the bridge is missing: run HostNetwork.ensure() first (hearthd does at boot)';
  if (/No such file or directory/.test(text) && /nft|element/.test(text)) return 'the nft table is missing: run HostNetwork.ensure() first';
  if (/Operation not permitted/.test(text)) return 'network plumbing needs root (CAP_NET_ADMIN)';
  return undefined;
}

function wrap(op: NetworkOp, e: unknown, hint?: string): NetworkError {
  if (e instanceof NetworkError) return e;
  return new NetworkError(op, e instanceof Error ? e.message : String(e), hint, { cause: e });
}

/** Read /proc/sys/net/ipv4/ip_forward of the current network namespace. */
export async function ipForwardEnabled(): Promise<boolean> {
  return (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim() === '1';
}
