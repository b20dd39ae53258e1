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
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HostCommandError, hostRun } from '../exec.ts';
import {
  renderAttachElements, renderDetachElements, renderInternetElements, renderRuleset, tableName,
  type HostServices, type WorkspaceNet,
} from './nft.ts';
import { gatewayIp, parseCidr, type NetworkPlan, type Slot } from './slot.ts';

/** Where iproute2 keeps named network namespaces. */
export const NETNS_DIR = '/run/netns';

export type NetworkOp = 'plan' | 'ensure' | 'attach' | 'detach' | 'setInternet' | 'teardown' | 'list';

export class NetworkError extends Error {
  constructor(readonly op: NetworkOp, message: string, readonly hint?: string, options?: { cause?: unknown }) {
    super(`network ${op}: ${message}`, options);
    this.name = 'NetworkError';
  }
}

export interface HostNetworkOptions {
  /** Services the host offers on the bridge (opens them in the input chain). Default none. */
  hostServices?: HostServices;
  ipPath?: string;
  nftPath?: string;
}

export interface AttachOptions {
  allowInternet: boolean;
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
  private readonly linkRe: RegExp;

  constructor(readonly plan: NetworkPlan, readonly runDir: string, private readonly opts: HostNetworkOptions = {}) {
    checkPlan(plan);
    this.table = tableName(plan);
    this.ip = opts.ipPath ?? 'ip';
    this.nft = opts.nftPath ?? 'nft';
    this.linkRe = new RegExp(`^${plan.linkPrefix}\\d+$`);
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

  /** The ruleset file last applied by ensure() (for operators; never read back). */
  get rulesetFile(): string {
    return join(this.runDir, `${this.table}.nft`);
  }

  /**
   * Idempotently create the bridge (gateway address, up), enable IPv4
   * forwarding and (re)load the nftables tables. Without `workspaces` the
   * set elements already loaded are kept, so calling ensure() on a live host
   * (hearthd restart) resets the chains without cutting anyone off; with
   * `workspaces` (reconcile) the sets become exactly that list.
   */
  async ensure(opts: { workspaces?: WorkspaceNet[] } = {}): Promise<void> {
    const { plan } = this;
    const { prefix } = parseCidr(plan.subnet);
    try {
      const exists = await this.linkKind(plan.bridge);
      if (exists !== null && exists !== 'bridge') {
        throw new NetworkError('ensure', `${plan.bridge} exists but is a ${exists || 'plain'} link, not a bridge`, `remove it (ip link del ${plan.bridge}) or choose another bridge name`);
      }
      const batch = [
        ...(exists === null ? [`link add name ${plan.bridge} address ${bridgeMac(plan)} type bridge stp_state 0`] : []),
        `addr replace ${gatewayIp(plan)}/${prefix} dev ${plan.bridge}`,
        `link set ${plan.bridge} up`,
      ];
      await hostRun(this.ip, ['-batch', '-'], { input: batch.join('\n') + '\n' });
      // The bridge is IPv4-only: no link-local address for workspaces to reach the host on.
      await writeFile(`/proc/sys/net/ipv6/conf/${plan.bridge}/disable_ipv6`, '1').catch(() => undefined);
      await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
      const workspaces = opts.workspaces ?? (await this.loadedWorkspaces());
      const text = renderRuleset({ plan, workspaces, hostServices: this.opts.hostServices });
      await hostRun(this.nft, ['-f', '-'], { input: text });
      await mkdir(this.runDir, { recursive: true });
      await writeFile(this.rulesetFile, text);
    } catch (e) {
      throw wrap('ensure', e, 'check that you are root and that iproute2 and nftables are installed (`hearth doctor`)');
    }
  }

  /**
   * Create the workspace's network namespace (named slot.hostIf), its veth
   * pair (host end on the bridge, peer `eth0` inside with the slot's MAC,
   * address and default route) and its firewall set elements. Fails closed:
   * the bridge table drops every frame from a port until its element is
   * added, and that element is added together with the air-gap element.
   * On failure everything acquired is released again.
   */
  async attach(slot: Slot, opts: AttachOptions): Promise<{ netnsPath: string }> {
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
   * (one `ip -batch`), concurrently with the firewall set elements (one
   * `nft -f -`). Enough for runc to join the namespace, so a driver can start
   * its sandbox while `configure` finishes the plumbing inside. The caller
   * owns cleanup (detach) on failure.
   */
  async prepare(slot: Slot, opts: AttachOptions): Promise<{ netnsPath: string }> {
    const ns = slot.hostIf;
    const host = [
      `netns add ${ns}`,
      `link add ${ns} type veth peer name eth0 address ${slot.mac} netns ${ns}`,
      `link set ${ns} master ${this.plan.bridge} up`,
    ].join('\n') + '\n';
    const links = async () => {
      try {
        await hostRun(this.ip, ['-batch', '-'], { input: host });
      } catch (e) {
        if (!(e instanceof HostCommandError) || !/File exists/.test(e.stderr)) throw e;
        // Leftover from a crash: remove it and try once more.
        await this.removeLinks(ns);
        await hostRun(this.ip, ['-batch', '-'], { input: host });
      }
    };
    const w: WorkspaceNet = { hostIf: ns, ip: slot.ip, mac: slot.mac, allowInternet: opts.allowInternet };
    const results = await Promise.allSettled([links(), hostRun(this.nft, ['-f', '-'], { input: renderAttachElements(this.plan, w) })]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw wrap('attach', failed.reason, hintFor(failed.reason));
    return { netnsPath: this.netnsPath(slot) };
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

  /** Remove the workspace's namespace, veth and set elements. Idempotent. */
  async detach(slot: Slot): Promise<void> {
    try {
      await Promise.all([this.removeElements(slot), this.removeLinks(slot.hostIf)]);
    } catch (e) {
      throw wrap('detach', e);
    }
  }

  /** Change allow_internet live (also cuts established flows: see nft.ts). */
  async setInternet(slot: Slot, allow: boolean): Promise<void> {
    try {
      await hostRun(this.nft, ['-f', '-'], { input: renderInternetElements(this.plan, slot.ip, allow) });
    } catch (e) {
      throw wrap('setInternet', e, `is the network set up? (HostNetwork.ensure for bridge ${this.plan.bridge})`);
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
      await hostRun(this.nft, ['-f', '-'], { input: `table inet ${t}\ndelete table inet ${t}\ntable bridge ${t}\ndelete table bridge ${t}\n` });
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

  /** The set elements currently loaded (empty when the tables do not exist yet). */
  async loadedWorkspaces(): Promise<WorkspaceNet[]> {
    const t = this.table;
    const ports = await hostRun(this.nft, ['-j', 'list', 'set', 'bridge', t, 'ports'], { okCodes: [0, 1] });
    if (ports.code !== 0) return [];
    const air = await hostRun(this.nft, ['-j', 'list', 'set', 'inet', t, 'no_internet'], { okCodes: [0, 1] });
    const noInternet = new Set(air.code === 0 ? setElements(air.stdout).map(String) : []);
    const out: WorkspaceNet[] = [];
    for (const el of setElements(ports.stdout)) {
      const parts = (el as { concat?: unknown[] }).concat;
      if (!Array.isArray(parts) || parts.length !== 3) continue;
      const [hostIf, mac, ip] = parts.map(String) as [string, string, string];
      out.push({ hostIf, mac, ip, allowInternet: !noInternet.has(ip) });
    }
    return out;
  }

  private async linkKind(name: string): Promise<string | null> {
    const r = await hostRun(this.ip, ['-j', '-d', 'link', 'show', 'dev', name], { okCodes: [0, 1, 255] });
    if (r.code !== 0) return null;
    const [link] = JSON.parse(r.stdout || '[]') as { linkinfo?: { info_kind?: string } }[];
    return link?.linkinfo?.info_kind ?? '';
  }

  private async removeElements(slot: Pick<Slot, 'hostIf' | 'ip' | 'mac'>): Promise<void> {
    const r = await hostRun(this.nft, ['-f', '-'], { input: renderDetachElements(this.plan, slot), okCodes: [0, 1] });
    // A missing table means there is nothing to remove.
    if (r.code !== 0 && !/No such file or directory/.test(r.stderr)) throw new HostCommandError([this.nft, '-f', '-'], r.code, r.stderr);
  }

  /** Delete the host veth end (synchronously removes its peer) then the namespace. */
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

function setElements(json: string): unknown[] {
  const doc = JSON.parse(json || '{}') as { nftables?: { set?: { elem?: unknown[] } }[] };
  for (const item of doc.nftables ?? []) if (item.set) return item.set.elem ?? [];
  return [];
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
