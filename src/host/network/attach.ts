/**
 * A workspace's link to the bridge: a named network namespace with a veth
 * pair (container) or a tap (microVM), each an isolated bridge port with a
 * static forwarding entry and its set element (firewall.ts). Names come from
 * the Slot, so a restarted hearthd finds the same links.
 *
 * Cost model: each `ip`/`nft` invocation is a process spawn (10-25 ms on the
 * development VM), so attach uses exactly three: one `ip -batch` on the host
 * (netns + veth + bridge port) concurrently with one `nft -f -` transaction
 * for the set elements (`prepare`), then one `ip -n <ns> -batch` inside the
 * namespace (lo, eth0, address, route: `configure`).
 */
import { join } from 'node:path';
import { HostCommandError, hostRun } from '../exec.ts';
import { ipTolerant, workspaceLinkRe } from './bridge.ts';
import { hintFor, wrap } from './errors.ts';
import type { Firewall } from './firewall.ts';
import type { WorkspacePort } from './nft.ts';
import type { NetworkPlan, Slot } from './slot.ts';

/** Where iproute2 keeps named network namespaces. */
export const NETNS_DIR = '/run/netns';

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

export class WorkspaceLinks {
  private readonly linkRe: RegExp;

  constructor(private readonly plan: NetworkPlan, private readonly ip: string, private readonly bridge: string, private readonly firewall: Firewall) {
    this.linkRe = workspaceLinkRe(plan);
  }

  /** Path of the workspace's network namespace (what runc joins). */
  netnsPath(slot: Pick<Slot, 'hostIf'>): string {
    return join(NETNS_DIR, slot.hostIf);
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
    const results = await Promise.allSettled([links(), this.firewall.addPort(port)]);
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
      await Promise.all([this.firewall.removePort(slot), this.removeLinks(slot.hostIf)]);
    } catch (e) {
      throw wrap('detach', e);
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

  /** Delete the host veth end (synchronously removes its peer) or tap, then the namespace. */
  async removeLinks(ns: string): Promise<void> {
    await ipTolerant(this.ip, [`link del ${ns}`, `netns del ${ns}`]);
  }
}
