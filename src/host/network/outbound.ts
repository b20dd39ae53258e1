/**
 * Where workspace egress leaves the host: the addresses an outbound (SNAT)
 * IP may be chosen from. The SNAT rules themselves are in the ruleset (nft.ts).
 */
import { hostRun } from '../exec.ts';
import { workspaceLinkRe } from './bridge.ts';
import type { NetworkPlan } from './slot.ts';

/** IPv4 addresses of this host's interfaces other than the bridge and workspace links (candidates for an outbound IP). */
export async function hostAddresses(ip: string, plan: NetworkPlan): Promise<string[]> {
  const linkRe = workspaceLinkRe(plan);
  const { stdout } = await hostRun(ip, ['-j', '-4', 'addr', 'show']);
  const links = JSON.parse(stdout || '[]') as { ifname: string; addr_info?: { local?: string; scope?: string }[] }[];
  return links.filter((l) => l.ifname !== plan.bridge && !linkRe.test(l.ifname))
    .flatMap((l) => (l.addr_info ?? []).filter((a) => a.scope === 'global' && a.local).map((a) => a.local!));
}
