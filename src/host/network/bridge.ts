/**
 * The plan's bridge on the host: checked names, a fixed MAC, the gateway
 * address, the per-bridge kernel knobs and IPv4 forwarding; and the
 * idempotent `ip` runs every removal uses.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { HostCommandError, hostRun } from '../exec.ts';
import { NetworkError } from './errors.ts';
import { conflictingRoute, gatewayIp, parseCidr, type NetworkPlan } from './slot.ts';

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

/** Workspace link and namespace names of a plan: the prefix and a slot index. */
export function workspaceLinkRe(plan: NetworkPlan): RegExp {
  return new RegExp(`^${plan.linkPrefix}\\d+$`);
}

/** Read /proc/sys/net/ipv4/ip_forward of the current network namespace. */
export async function ipForwardEnabled(): Promise<boolean> {
  return (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim() === '1';
}

/** Errors that mean "already gone" for idempotent removals. */
const GONE = /Cannot find device|No such file or directory|does not exist|Cannot remove namespace file/;

/** Run an `ip -force -batch`, ignoring "already gone" errors only. */
export async function ipTolerant(ip: string, lines: string[]): Promise<void> {
  const r = await hostRun(ip, ['-force', '-batch', '-'], { input: lines.join('\n') + '\n', okCodes: [0, 1, 2, 255] });
  if (r.code === 0) return;
  const real = r.stderr.split('\n').filter((l) => l.trim() && !GONE.test(l) && !/^Command failed/.test(l));
  if (real.length) throw new HostCommandError([ip, '-force', '-batch', '-'], r.code, `${lines.join('; ')}: ${real.join('\n')}`);
}

export class Bridge {
  constructor(private readonly plan: NetworkPlan, private readonly ip: string) {}

  /**
   * Idempotently create the bridge (gateway address, up, ARP answered for
   * every workspace so their traffic is routed through the host) and enable
   * IPv4 forwarding. Refuses a same-named link that is not a bridge and a
   * subnet another interface routes.
   */
  async ensure(): Promise<void> {
    const { plan } = this;
    const { prefix } = parseCidr(plan.subnet);
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
    await this.sysctls();
    await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
  }

  /** Delete the bridge (its ports go first: see HostNetwork.teardown). Idempotent. */
  async remove(): Promise<void> {
    await ipTolerant(this.ip, ['link del ' + this.plan.bridge]);
  }

  /**
   * Per-bridge kernel knobs (per network namespace, so tests never collide):
   * answer ARP for other workspaces with the bridge's MAC (ports are
   * isolated, so that is the only way two workspaces can talk: through the
   * host, where the policy is), at once (proxy_delay 0), without ICMP
   * redirects, and no IPv6 address for workspaces to reach the host on.
   */
  private async sysctls(): Promise<void> {
    const br = this.plan.bridge;
    const set = (file: string, v: string, required: boolean) => writeFile(file, v).catch((e: Error) => { if (required) throw e; });
    await Promise.all([
      set(`/proc/sys/net/ipv4/conf/${br}/proxy_arp_pvlan`, '1', true),
      set(`/proc/sys/net/ipv4/neigh/${br}/proxy_delay`, '0', true),
      set(`/proc/sys/net/ipv4/conf/${br}/send_redirects`, '0', false),
      set(`/proc/sys/net/ipv6/conf/${br}/disable_ipv6`, '1', false),
    ]);
  }

  private async linkKind(name: string): Promise<string | null> {
    const r = await hostRun(this.ip, ['-j', '-d', 'link', 'show', 'dev', name], { okCodes: [0, 1, 255] });
    if (r.code !== 0) return null;
    const [link] = JSON.parse(r.stdout || '[]') as { linkinfo?: { info_kind?: string } }[];
    return link?.linkinfo?.info_kind ?? '';
  }
}
