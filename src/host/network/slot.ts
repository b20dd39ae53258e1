/**
 * A workspace's network identity is one small integer from a pool (E2B's
 * Slot): interface names, IP and MAC are all derived from it, so nothing
 * derived needs storing. The store persists only the index; a restarted
 * hearthd re-derives everything.
 */
import { cidrContains, parseCidr as parseAddressOrNetwork } from '../../core/network-policy.ts';

export interface NetworkPlan {
  /** Bridge device name (≤ 15 chars). */
  bridge: string;
  /** IPv4 network of the bridge, e.g. 10.88.0.0/16. The host takes .1. */
  subnet: string;
  /** Prefix for per-workspace link names (`hth` → `hth17`). ≤ 7 chars. */
  linkPrefix: string;
  /**
   * Private ranges (inside core's PRIVATE_NETWORKS) the operator opens to
   * workspace egress, e.g. a LAN service every workspace may use; each
   * workspace's own policy still applies. Default: none.
   */
  privateAllowed?: string[];
}

export const DEFAULT_NETWORK_PLAN: NetworkPlan = { bridge: 'hearth0', subnet: '10.88.0.0/16', linkPrefix: 'hth' };

export interface Slot {
  index: number;
  /** Host-side link (veth end or tap) on the bridge. */
  hostIf: string;
  /** Workspace address, e.g. 10.88.0.17. */
  ip: string;
  /** Prefix length of the bridge network. */
  prefix: number;
  /** Gateway = the bridge's address. */
  gateway: string;
  /** Locally administered MAC derived from the index. */
  mac: string;
}

function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`invalid IPv4 address: ${ip}`);
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parseCidr(cidr: string): { base: number; prefix: number } {
  const [ip, p] = cidr.split('/');
  const prefix = Number(p);
  if (!ip || !Number.isInteger(prefix) || prefix < 8 || prefix > 30) throw new Error(`invalid subnet ${cidr}: want a.b.c.d/8..30`);
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return { base: (ipToInt(ip) & mask) >>> 0, prefix };
}

/**
 * Pure: the first route (from `ip -j -4 route show`) on another device whose destination overlaps
 * `subnet`, or null. The default route overlaps everything and is not a conflict; a host route
 * (`10.1.2.3`) is a /32.
 */
export function conflictingRoute(subnet: string, routes: Array<{ dst?: string; dev?: string }>, ownDevice: string): { dst: string; dev: string } | null {
  const ours = parseCidr(subnet);
  for (const r of routes) {
    if (!r.dst || r.dst === 'default' || r.dev === ownDevice) continue;
    let theirs: { base: number; prefix: number };
    try {
      theirs = parseAddressOrNetwork(r.dst);
    } catch {
      continue; // not IPv4
    }
    if (cidrContains(theirs, ours) || cidrContains(ours, theirs)) return { dst: r.dst, dev: r.dev ?? '?' };
  }
  return null;
}

/** How many workspace slots a plan offers (.0 network, .1 gateway and broadcast excluded). */
export function slotCapacity(plan: NetworkPlan): number {
  const { prefix } = parseCidr(plan.subnet);
  return 2 ** (32 - prefix) - 3;
}

export function gatewayIp(plan: NetworkPlan): string {
  return intToIp(parseCidr(plan.subnet).base + 1);
}

/** Slot indexes start at 0; slot i gets address base + 2 + i. */
export function slotFor(plan: NetworkPlan, index: number): Slot {
  if (!Number.isInteger(index) || index < 0 || index >= slotCapacity(plan)) throw new Error(`slot index ${index} outside 0..${slotCapacity(plan) - 1}`);
  const { base, prefix } = parseCidr(plan.subnet);
  const ipInt = base + 2 + index;
  const mac = ['02', '48', ...[24, 16, 8, 0].map((s) => ((ipInt >>> s) & 255).toString(16).padStart(2, '0'))].join(':');
  return { index, hostIf: `${plan.linkPrefix}${index}`, ip: intToIp(ipInt), prefix, gateway: gatewayIp(plan), mac };
}

export { ipToInt, intToIp };
