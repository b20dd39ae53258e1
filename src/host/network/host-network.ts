/**
 * The host side of workspace networking: one bridge (bridge.ts), one
 * nftables table pair (firewall.ts applying what nft.ts renders), and per
 * workspace a named network namespace joined to the bridge by a veth pair,
 * or a tap (attach.ts). Every name and address comes from the workspace's
 * Slot (slot.ts), so nothing here keeps state in memory that the kernel
 * does not also hold: after a restart the same calls find the same links,
 * namespaces and set elements. HostNetwork is the one object drivers and
 * LocalHost hold; each concern lives in its own file beside it.
 *
 * Attach costs three process spawns (attach.ts): a driver may start its
 * sandbox between `prepare` and `configure`, concurrently with `configure`.
 * OPERATIONS.md beside this file is the runbook.
 */
import { AGENT_PORT } from '../../core/agent-protocol.ts';
import type { NetworkPolicy } from '../../core/network-policy.ts';
import { hostRun } from '../exec.ts';
import { WorkspaceLinks, type AttachOptions } from './attach.ts';
import { Bridge, checkPlan } from './bridge.ts';
import { wrap } from './errors.ts';
import { Firewall } from './firewall.ts';
import type { LoadedState } from './nft.ts';
import { hostAddresses } from './outbound.ts';
import { gatewayIp, type NetworkPlan, type Slot } from './slot.ts';

// What callers import from here, wherever it now lives.
export { NETNS_DIR, type AttachOptions } from './attach.ts';
export { bridgeMac, checkPlan, ipForwardEnabled } from './bridge.ts';
export { NetworkError, type NetworkOp } from './errors.ts';

export interface HostNetworkOptions {
  /** The guest agent's port: only the host may reach it. Default AGENT_PORT. */
  agentPort?: number;
  /** Hearth's DNS forwarder listens on the gateway (opens 53 to it in the input chain). Default false. */
  dns?: boolean;
  /** SNAT address for workspace egress without a per-workspace one (`--outbound-ip`). Default: masquerade. */
  outboundIp?: string | null;
  /** Host uids of QEMU processes, whose sockets the output hook drops (nft.ts). Default: none. */
  vmUids?: { first: number; last: number } | null;
  ipPath?: string;
  nftPath?: string;
  bridgePath?: string;
}

export class HostNetwork {
  readonly table: string;
  private readonly ip: string;
  private readonly nft: string;
  private readonly bridge: Bridge;
  private readonly firewall: Firewall;
  private readonly links: WorkspaceLinks;

  constructor(readonly plan: NetworkPlan, readonly runDir: string, opts: HostNetworkOptions = {}) {
    checkPlan(plan);
    this.ip = opts.ipPath ?? 'ip';
    this.nft = opts.nftPath ?? 'nft';
    this.bridge = new Bridge(plan, this.ip);
    this.firewall = new Firewall(plan, runDir, this.nft, { agentPort: opts.agentPort ?? AGENT_PORT, dns: opts.dns ?? false, outboundIp: opts.outboundIp ?? null, vmUids: opts.vmUids ?? null });
    this.links = new WorkspaceLinks(plan, this.ip, opts.bridgePath ?? 'bridge', this.firewall);
    this.table = this.firewall.table;
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
    return this.links.netnsPath(slot);
  }

  /** The ruleset file last applied by ensure()/sync() (for operators; never read back). */
  get rulesetFile(): string {
    return this.firewall.rulesetFile;
  }

  /** The gateway address (where the DNS forwarder listens). */
  get gateway(): string {
    return gatewayIp(this.plan);
  }

  /** The SNAT address used for workspaces without their own (null: masquerade). */
  get defaultOutboundIp(): string | null {
    return this.firewall.options.outboundIp;
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
    try {
      await this.bridge.ensure();
      await this.firewall.reload();
    } catch (e) {
      throw wrap('ensure', e, 'check that you are root and that iproute2 and nftables are installed (`hearth doctor`)');
    }
  }

  /** Hearth's own names the DNS forwarder answers (name → the gateway), while hearthd is published. */
  publishedNames: ReadonlyMap<string, string> = new Map();

  /**
   * Open the gateway's port 80 to hearthd's workspace-facing listener on
   * `port` (firewall.ts) and answer `names` with the gateway address; null
   * closes it and forgets the names.
   */
  async publishHearth(port: number | null, names: readonly string[] = []): Promise<void> {
    await this.firewall.publishHearth(port);
    this.publishedNames = new Map(port === null ? [] : names.map((n) => [n, this.gateway]));
  }

  /** Make the loaded policies exactly `policies` (every workspace the store knows), in one transaction (firewall.ts). */
  sync(policies: NetworkPolicy[]): Promise<{ policies: number; ports: number; dropped: { ports: string[]; dnsGrants: number } }> {
    return this.firewall.sync(policies);
  }

  /** Apply one workspace's policy live, as a diff from the last one (firewall.ts). */
  setPolicy(policy: NetworkPolicy): Promise<void> {
    return this.firewall.setPolicy(policy);
  }

  /** Remove a workspace's policy and DNS grants (workspace deleted). Idempotent. */
  removePolicy(ip: string): Promise<void> {
    return this.firewall.removePolicy(ip);
  }

  /** The policy applied for an address (the DNS forwarder's view). */
  policyOf(ip: string): NetworkPolicy | undefined {
    return this.firewall.policyOf(ip);
  }

  /** Let `src` reach the addresses a DNS answer gave it for `name` (firewall.ts). */
  grantDns(src: string, name: string, answers: { ip: string; ttl: number }[]): Promise<void> {
    return this.firewall.grantDns(src, name, answers);
  }

  /** Namespace, veth pair and port element of a workspace, fail closed (attach.ts). */
  attach(slot: Slot, opts: AttachOptions = {}): Promise<{ netnsPath: string }> {
    return this.links.attach(slot, opts);
  }

  /** attach, first half: namespace and veth on the bridge with the port element. The caller owns cleanup (detach). */
  prepare(slot: Slot, opts: AttachOptions = {}): Promise<{ netnsPath: string }> {
    return this.links.prepare(slot, opts);
  }

  /** The microvm driver's attach: a tap as an isolated bridge port. Undo with detach(slot). */
  prepareTap(slot: Slot): Promise<{ tap: string; mac: string }> {
    return this.links.prepareTap(slot);
  }

  /** attach, second half: lo, eth0's address and the default route inside the namespace. */
  configure(slot: Slot): Promise<void> {
    return this.links.configure(slot);
  }

  /** Remove the workspace's port element, veth or tap, and namespace. Idempotent. The policy stays (removePolicy). */
  detach(slot: Slot): Promise<void> {
    return this.links.detach(slot);
  }

  /**
   * Remove everything this plan owns on the host: both nft tables, every
   * workspace link and namespace with the plan's prefix, and the bridge.
   * IPv4 forwarding is left on (other software may rely on it).
   */
  async teardown(): Promise<void> {
    try {
      await this.firewall.drop();
      for (const name of await this.links.listAttached()) await this.links.removeLinks(name);
      await this.bridge.remove();
    } catch (e) {
      throw wrap('teardown', e);
    }
  }

  /** Names (slot.hostIf) of the plan's workspace links and namespaces present on the host, for reconcile. */
  listAttached(): Promise<string[]> {
    return this.links.listAttached();
  }

  /** Slot indexes of the workspace links that are ports of this plan's bridge (provably this instance's). */
  bridgePortSlots(): Promise<number[]> {
    return this.links.bridgePortSlots();
  }

  /** Everything loaded in the two tables (empty when they do not exist yet). */
  loaded(): Promise<LoadedState> {
    return this.firewall.loaded();
  }

  /** IPv4 addresses of this host's interfaces other than the bridge (candidates for an outbound IP). */
  hostAddresses(): Promise<string[]> {
    return hostAddresses(this.ip, this.plan);
  }
}
