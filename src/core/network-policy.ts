/**
 * A workspace's network policy as data (microsandbox's
 * NetworkPolicy): for each direction an ordered list of rules, first match
 * wins, and anything no rule matches is denied, so a missing or empty
 * policy fails closed. Pure: `buildPolicy` turns the stored config
 * (`ingress`, `egress`, `allow_internet`, `outbound_ip`) into the policy;
 * `src/host/network/nft.ts` renders it into nftables set elements and
 * `dnsVerdict` tells the host's DNS forwarder what a workspace may resolve.
 *
 * Semantics (contract §7, §29.2 rows 8-9):
 * - ingress: who may open connections to the workspace. Only the listed
 *   sources (IPv4 addresses or CIDRs, in practice other workspaces' internal
 *   IPs); nobody by default. The agent's port never (the host alone talks to
 *   agents).
 * - egress: where the workspace may open connections. An empty list means
 *   "anywhere" when allow_internet is true, and "other workspaces only"
 *   (private networking, each still gated by the target's ingress) when it
 *   is false (air-gapped). A non-empty list means exactly those
 *   destinations, whatever allow_internet says ("no route out except what
 *   egress names").
 * - a workspace reaches another only when both agree: the source's egress
 *   allows the target and the target's ingress names the source.
 * - some destinations are never reachable, whatever the lists say
 *   (BUILTIN_EGRESS_DENY: link-local covers cloud metadata services).
 * - the host's neighbours are not the internet: private (RFC 1918),
 *   shared/CGNAT (100.64/10) and benchmarking (198.18/15) networks are
 *   denied too (PRIVATE_NETWORKS), whatever the lists say, except Hearth's
 *   own workspace network (reached by the rules above, each side's policy
 *   deciding) and the ranges the operator allows for every workspace
 *   (`hearth serve --egress-allow-private CIDR,…`): a tenant cannot list its
 *   way onto the host's LAN, and a name that resolves to a LAN address
 *   grants nothing.
 */

export type Verdict = 'allow' | 'deny';

/** What a rule matches on the other end of a connection. */
export type Peer =
  | { kind: 'any' }
  /** Every address on the workspace bridge (other workspaces). */
  | { kind: 'workspaces' }
  | { kind: 'address'; ip: string }
  | { kind: 'network'; cidr: string; except?: string[] }
  /** Resolved through the host's DNS forwarder (egress only). */
  | { kind: 'hostname'; name: string }
  /** A TCP port on the workspace itself (ingress only). */
  | { kind: 'tcp-port'; port: number };

export interface PolicyRule {
  verdict: Verdict;
  peer: Peer;
  /** Why the rule exists (rendered as an nft comment where it is a rule). */
  why: string;
}

export interface NetworkPolicy {
  /** The workspace's internal address. */
  ip: string;
  /** First match wins; no match = deny. */
  egress: PolicyRule[];
  ingress: PolicyRule[];
  /** SNAT address for traffic leaving the host, or null (masquerade / host default). */
  outboundIp: string | null;
}

/** The stored config fields the policy is built from (a subset of WorkspaceConfig). */
export interface PolicyConfig {
  allow_internet: boolean;
  ingress: string[];
  egress: string[];
  outbound_ip?: unknown;
}

export interface PolicyContext {
  ip: string;
  /** The bridge network, e.g. 10.88.0.0/16. */
  subnet: string;
  /** The guest agent's port: reachable from the host only. */
  agentPort: number;
  /** Private ranges the operator opened to every workspace's egress policy (default none). */
  privateAllowed?: string[];
}

/**
 * Destinations no workspace may reach, first in every egress list:
 * "this network", link-local (169.254.169.254 is the metadata service of
 * most clouds: credentials), multicast and reserved/broadcast.
 */
export const BUILTIN_EGRESS_DENY: readonly PolicyRule[] = Object.freeze([
  { verdict: 'deny', peer: { kind: 'network', cidr: '0.0.0.0/8' }, why: 'this-network addresses are never a destination' },
  { verdict: 'deny', peer: { kind: 'network', cidr: '169.254.0.0/16' }, why: 'link-local: cloud metadata services (credentials)' },
  { verdict: 'deny', peer: { kind: 'network', cidr: '224.0.0.0/3' }, why: 'multicast, reserved and broadcast' },
] as PolicyRule[]);

/**
 * The host's neighbours: private, shared (CGNAT) and benchmarking networks.
 * Denied after the builtin denies, except the workspace network and what the
 * operator allowed (see `privateEgressDeny`).
 */
export const PRIVATE_NETWORKS: readonly string[] = Object.freeze(['10.0.0.0/8', '100.64.0.0/10', '172.16.0.0/12', '192.168.0.0/16', '198.18.0.0/15']);

/** The private-network denies of a workspace's egress, with their exceptions (its own network, the operator's ranges). */
export function privateEgressDeny(ctx: Pick<PolicyContext, 'subnet' | 'privateAllowed'>): PolicyRule[] {
  const except = [ctx.subnet, ...(ctx.privateAllowed ?? [])];
  return PRIVATE_NETWORKS.map((cidr) => ({
    verdict: 'deny' as const,
    peer: { kind: 'network' as const, cidr, except },
    why: 'the host\'s neighbours (private, CGNAT, benchmarking networks) unless the operator allowed the range',
  }));
}

/** Operator input: IPv4 CIDRs inside PRIVATE_NETWORKS (an address outside them needs no allowing). */
export function parsePrivateAllowed(entries: string[]): string[] {
  return entries.map((e) => {
    const c = parseCidr(e);
    const canon = `${intToIp(c.base)}/${c.prefix}`;
    if (!PRIVATE_NETWORKS.some((n) => cidrContains(parseCidr(n), c))) throw new Error(`${e} is not inside a private range (${PRIVATE_NETWORKS.join(', ')}): nothing to allow`);
    return canon;
  });
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIpv4(s: unknown): s is string {
  return typeof s === 'string' && IPV4.test(s);
}

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, p) => acc * 256 + Number(p), 0) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** `a.b.c.d/n` → canonical network (host bits cleared); a bare address is /32. */
export function parseCidr(s: string): { base: number; prefix: number } {
  const [ip, p] = s.split('/');
  const prefix = p === undefined ? 32 : Number(p);
  if (!isIpv4(ip) || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error(`not an IPv4 address or CIDR: ${s}`);
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return { base: (ipToInt(ip) & mask) >>> 0, prefix };
}

export function cidrContains(outer: { base: number; prefix: number }, inner: { base: number; prefix: number }): boolean {
  if (inner.prefix < outer.prefix) return false;
  const mask = outer.prefix === 0 ? 0 : (~0 << (32 - outer.prefix)) >>> 0;
  return ((inner.base & mask) >>> 0) === outer.base;
}

/**
 * Address/CIDR entries as peers: /32 become addresses, the rest canonical
 * networks; entries covered by a wider one are dropped (nft interval sets
 * refuse overlaps, and a covered entry can never be the first match of an
 * allow-only list anyway). Order of first appearance is kept.
 */
export function addressPeers(entries: string[]): Peer[] {
  const parsed = entries.map((e) => ({ e, c: parseCidr(e) }));
  const out: Peer[] = [];
  const seen = new Set<string>();
  parsed.forEach(({ c }, i) => {
    const coveredBy = parsed.findIndex(({ c: o }, j) => j !== i && cidrContains(o, c) && (o.prefix < c.prefix || j < i));
    if (coveredBy !== -1) return;
    const key = `${intToIp(c.base)}/${c.prefix}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(c.prefix === 32 ? { kind: 'address', ip: intToIp(c.base) } : { kind: 'network', cidr: key });
  });
  return out;
}

/** Egress entries split into hostnames (lower case, no trailing dot) and address/CIDR entries. */
function splitEgress(entries: string[]): { hosts: string[]; addrs: string[] } {
  const hosts: string[] = [];
  const addrs: string[] = [];
  for (const e of entries) {
    const [ip] = e.split('/');
    if (isIpv4(ip)) addrs.push(e);
    else {
      const h = normalizeHostname(e);
      if (!hosts.includes(h)) hosts.push(h);
    }
  }
  return { hosts, addrs };
}

export function normalizeHostname(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** The policy of one workspace from its stored config. Pure and total: unknown shapes fail closed. */
export function buildPolicy(config: PolicyConfig, ctx: PolicyContext): NetworkPolicy {
  const egress: PolicyRule[] = [...BUILTIN_EGRESS_DENY, ...privateEgressDeny(ctx)];
  const egressList = Array.isArray(config.egress) ? config.egress.filter((e): e is string => typeof e === 'string') : [];
  if (egressList.length) {
    const { hosts, addrs } = splitEgress(egressList);
    for (const peer of addressPeers(addrs)) egress.push({ verdict: 'allow', peer, why: `egress allow-list: ${describePeer(peer)}` });
    for (const name of hosts) egress.push({ verdict: 'allow', peer: { kind: 'hostname', name }, why: `egress allow-list: ${name} (as resolved through Hearth's DNS)` });
  } else if (config.allow_internet !== false) {
    egress.push({ verdict: 'allow', peer: { kind: 'any' }, why: 'no egress list and allow_internet: anywhere' });
  } else {
    egress.push({ verdict: 'allow', peer: { kind: 'workspaces' }, why: `air-gapped (allow_internet:false): other workspaces on ${ctx.subnet} only, if their ingress allows` });
  }

  const ingress: PolicyRule[] = [
    { verdict: 'deny', peer: { kind: 'tcp-port', port: ctx.agentPort }, why: 'the guest agent answers the host only' },
  ];
  const ingressList = Array.isArray(config.ingress) ? config.ingress.filter((e): e is string => typeof e === 'string' && isIpv4(e.split('/')[0])) : [];
  for (const peer of addressPeers(ingressList)) ingress.push({ verdict: 'allow', peer, why: `ingress allow-list: ${describePeer(peer)}` });

  const outboundIp = isIpv4(config.outbound_ip) ? config.outbound_ip : null;
  return { ip: ctx.ip, egress, ingress, outboundIp };
}

export function describePeer(p: Peer): string {
  switch (p.kind) {
    case 'any': return 'anywhere';
    case 'workspaces': return 'other workspaces';
    case 'address': return p.ip;
    case 'network': return p.cidr;
    case 'hostname': return p.name;
    case 'tcp-port': return `tcp port ${p.port}`;
  }
}

/** Hostnames the egress list allows (for the DNS forwarder). */
export function allowedHostnames(policy: NetworkPolicy): string[] {
  return policy.egress.filter((r) => r.verdict === 'allow' && r.peer.kind === 'hostname').map((r) => (r.peer as { name: string }).name);
}

/** Is egress open to anywhere (no allow-list)? Then DNS answers need not be learned. */
export function egressIsOpen(policy: NetworkPolicy): boolean {
  return policy.egress.some((r) => r.verdict === 'allow' && r.peer.kind === 'any');
}

/**
 * What the host's DNS forwarder does with a query from this workspace:
 * - `pass`: forward and relay (egress is open: any answer is reachable anyway);
 * - `learn`: forward, and allow the answer's addresses for this workspace
 *   before relaying it (the name is on the egress list);
 * - `refuse`: answer NXDOMAIN without asking anyone, so an air-gapped or
 *   allow-listed workspace cannot use DNS as a way out (tunnelling).
 */
export type DnsVerdict = 'pass' | 'learn' | 'refuse';

export function dnsVerdict(policy: NetworkPolicy | undefined, qname: string): DnsVerdict {
  if (!policy) return 'refuse';
  if (egressIsOpen(policy)) return 'pass';
  return allowedHostnames(policy).includes(normalizeHostname(qname)) ? 'learn' : 'refuse';
}

/**
 * First-match evaluation of a rule list (the reference semantics the nft
 * rendering must implement; used by tests and by `hearth doctor`-style
 * explanations). `peer` is the other end's address; `hostnamesOf` says which
 * allowed hostnames currently resolve to it.
 */
export function evaluate(rules: PolicyRule[], peer: { ip: string; tcpPort?: number; hostnames?: string[] }, subnet: string): { verdict: Verdict; rule: PolicyRule | null } {
  const addr = parseCidr(peer.ip);
  const net = parseCidr(subnet);
  for (const r of rules) {
    const p = r.peer;
    const hit = p.kind === 'any'
      || (p.kind === 'workspaces' && cidrContains(net, addr))
      || (p.kind === 'address' && p.ip === peer.ip)
      || (p.kind === 'network' && cidrContains(parseCidr(p.cidr), addr) && !(p.except ?? []).some((x) => cidrContains(parseCidr(x), addr)))
      || (p.kind === 'hostname' && (peer.hostnames ?? []).includes(p.name))
      || (p.kind === 'tcp-port' && peer.tcpPort === p.port);
    if (hit) return { verdict: r.verdict, rule: r };
  }
  return { verdict: 'deny', rule: null };
}

/**
 * Names of workspaces in ingress/egress lists (issue: a reused IP inherits
 * trust). On the workspace network an address is the name of the one
 * workspace that holds it, and only while it does: the control plane refuses
 * an address no live workspace holds and any range inside the network (a
 * range trusts whoever lands in it later), removes a deleted workspace's
 * address from every other workspace's lists in the same transaction as the
 * delete, and never hands out a slot whose address a list still names.
 * These are the pure parts of that; `src/control/workspaces/network.ts` is
 * the rest.
 */

/** The workspace addresses of a host, as one inclusive range of integers (slots are consecutive). */
export interface WorkspaceRange { first: number; last: number }

/** What an ingress/egress entry is with respect to the workspace network. */
export type EntryKind = 'workspace-address' | 'workspace-range' | 'outside';

export function classifyEntry(entry: string, range: WorkspaceRange): EntryKind {
  const [ip] = entry.split('/');
  if (!isIpv4(ip)) return 'outside'; // a hostname
  const c = parseCidr(entry);
  const size = 2 ** (32 - c.prefix);
  const lo = c.base, hi = c.base + size - 1;
  if (hi < range.first || lo > range.last) return 'outside';
  return c.prefix === 32 ? 'workspace-address' : 'workspace-range';
}

/** Does `entry` (address or CIDR) cover the address `ip`? Hostnames never do. */
export function entryCovers(entry: string, ip: string): boolean {
  const [addr] = entry.split('/');
  if (!isIpv4(addr)) return false;
  try {
    return cidrContains(parseCidr(entry), parseCidr(ip));
  } catch {
    return false;
  }
}

/** `entries` without those naming exactly `ip` (as `a.b.c.d` or `a.b.c.d/32`); null when nothing changes. */
export function withoutAddress(entries: unknown, ip: string): string[] | null {
  if (!Array.isArray(entries)) return null;
  const kept = entries.filter((e) => !(typeof e === 'string' && isIpv4(e.split('/')[0]) && parseCidr(e).prefix === 32 && intToIp(parseCidr(e).base) === ip));
  return kept.length === entries.length ? null : (kept as string[]);
}

/** Is `ip` named (covered) by any entry of any of these lists? */
export function isNamed(ip: string, lists: Iterable<unknown>): boolean {
  for (const l of lists) {
    if (Array.isArray(l) && l.some((e) => typeof e === 'string' && entryCovers(e, ip))) return true;
  }
  return false;
}

/**
 * The lowest slot that is free, not resting after a delete, and whose
 * address no ingress/egress list of a live workspace names (belt and
 * braces: deletes remove those names, but a slot whose address is still
 * named would hand the new workspace whatever the name grants). Null when
 * none is left.
 */
export function pickFreeSlot(capacity: number, taken: (i: number) => boolean, ipOf: (i: number) => string, lists: unknown[]): number | null {
  const named = lists.filter((l) => Array.isArray(l) && l.length > 0);
  for (let i = 0; i < capacity; i++) {
    if (taken(i)) continue;
    if (named.length && isNamed(ipOf(i), named)) continue;
    return i;
  }
  return null;
}

/** `policy` without its allows naming the address `ip` (a deleted workspace's); never reaches more than before. */
export function policyWithoutPeer(policy: NetworkPolicy, ip: string): NetworkPolicy {
  const keep = (r: PolicyRule) => !(r.verdict === 'allow' && r.peer.kind === 'address' && r.peer.ip === ip);
  return { ...policy, egress: policy.egress.filter(keep), ingress: policy.ingress.filter(keep) };
}
