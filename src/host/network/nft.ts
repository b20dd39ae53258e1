/**
 * Hearth's host firewall as data rendered to nftables text.
 *
 * Everything here is pure: `renderRuleset(state)` returns the one ruleset
 * string that `HostNetwork.ensure()/sync()` feed to `nft -f -`, and the
 * `render*` helpers return the set-element transactions applied live by
 * attach/detach/setPolicy/learnDns. Golden tests pin the text
 * (test/golden/nft-*.nft). OPERATIONS.md beside this file explains the layout
 * and how to inspect it on a live host.
 *
 * Two tables per bridge, both named `hearth_<bridge>` so instances on
 * different bridges (tests) never collide:
 *   - `inet`   routed traffic: workspace policy (forward), host protection
 *              (input), outbound identity (postrouting);
 *   - `bridge` anti-spoofing: every frame from a workspace port must carry
 *              that port's MAC and address.
 * Workspace ports are *isolated* bridge ports and the bridge answers ARP for
 * every address (proxy_arp_pvlan), so traffic between two workspaces is
 * always routed through the host and meets the inet `forward` chain with
 * conntrack, whatever br_netfilter says.
 *
 * The rules are fixed; everything per workspace is set elements. That keeps
 * a live policy change to a handful of element updates in one transaction
 * (~15 ms with 1 000 workspaces loaded, bench/network.ts) instead of
 * reloading chains, and lets a restarted hearthd carry every element over.
 */
import { BUILTIN_EGRESS_DENY, PRIVATE_NETWORKS, type NetworkPolicy, type PolicyRule } from '../../core/network-policy.ts';
import { gatewayIp, parseCidr, intToIp, type NetworkPlan } from './slot.ts';
import { INTERNAL_PORT } from '../../core/internal-plane.ts';

/** A workspace port on the bridge (its attachment; removed on stop). */
export interface WorkspacePort {
  /** Host-side link on the bridge (slot.hostIf): veth end or tap. */
  hostIf: string;
  ip: string;
  mac: string;
}

/** What one workspace's policy contributes to the policy sets (kept for its lifetime). */
export interface PolicyElements {
  ip: string;
  /** Egress open to anywhere (not in the builtin denies). */
  egressOpen: boolean;
  /** Egress to other workspaces (air-gapped without a list). */
  egressInternal: boolean;
  egressHosts: string[];
  egressNets: string[];
  ingressHosts: string[];
  ingressNets: string[];
  outboundIp: string | null;
}

/** An address a workspace may reach because Hearth's DNS gave it for an allowed name. */
export interface DnsGrant {
  src: string;
  dst: string;
  name: string;
  /** Seconds left. */
  timeoutS: number;
}

export interface RulesetOptions {
  /** The guest agent's port (never reachable from other workspaces). */
  agentPort: number;
  /** Hearth's DNS forwarder listens on the gateway (opens 53 to it). */
  dns: boolean;
  /** SNAT address for workspaces without their own (null: masquerade). */
  outboundIp: string | null;
  /**
   * hearthd's workspace-facing listener on the gateway (src/core/internal-plane.ts):
   * port 80 of the gateway is redirected to it, reachable as the internet is. Absent: closed.
   */
  hearthPort?: number | null;
  /**
   * The host uids QEMU processes run as (one per slot, src/host/drivers/microvm/context.ts):
   * their sockets reach nothing (no loopback, no agent, no internet). A VM's NIC is a tap and
   * its QMP, serial and migration channels are unix sockets, none of which this hook sees.
   */
  vmUids?: { first: number; last: number } | null;
}

export interface RulesetState {
  plan: NetworkPlan;
  ports: WorkspacePort[];
  policies: PolicyElements[];
  dnsGrants?: DnsGrant[];
  options: RulesetOptions;
}

/** How long an address learned from DNS stays allowed at least, and after its last packet. */
export const DNS_GRANT_MIN_S = 3600;
export const DNS_GRANT_MAX_S = 86_400;

export class UnrenderablePolicy extends Error {
  constructor(message: string) {
    super(`network policy cannot be rendered: ${message}`);
    this.name = 'UnrenderablePolicy';
  }
}

/** The nft table name (both families) for a bridge. */
export function tableName(plan: Pick<NetworkPlan, 'bridge'>): string {
  return `hearth_${plan.bridge.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** The subnet in canonical form (`10.88.0.0/16`). */
export function subnetCidr(plan: Pick<NetworkPlan, 'subnet'>): string {
  const { base, prefix } = parseCidr(plan.subnet);
  return `${intToIp(base)}/${prefix}`;
}

const q = (s: string) => JSON.stringify(s);
const ipNum = (ip: string) => ip.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
const byIp = <T extends { ip: string }>(a: T, b: T) => ipNum(a.ip) - ipNum(b.ip);

function same(a: PolicyRule, b: PolicyRule): boolean {
  return a.verdict === b.verdict && JSON.stringify(a.peer) === JSON.stringify(b.peer);
}

/**
 * The set elements of one policy. The fixed rules implement exactly: the
 * builtin egress denies, the private-network denies (their exceptions, the
 * workspace network and the operator's ranges, come from the plan), then the
 * workspace's allows, then deny; ingress:
 * the agent-port deny, then allows, then deny. A policy of any other shape
 * is refused rather than rendered approximately.
 */
export function policyElements(policy: NetworkPolicy, opts: Pick<RulesetOptions, 'agentPort'>): PolicyElements {
  const el: PolicyElements = {
    ip: policy.ip, egressOpen: false, egressInternal: false, egressHosts: [], egressNets: [], ingressHosts: [], ingressNets: [], outboundIp: policy.outboundIp,
  };
  const n = BUILTIN_EGRESS_DENY.length;
  if (policy.egress.length < n || !BUILTIN_EGRESS_DENY.every((r, i) => same(r, policy.egress[i]!))) {
    throw new UnrenderablePolicy('egress must start with the builtin denies');
  }
  const privateDenies = policy.egress.slice(n, n + PRIVATE_NETWORKS.length);
  if (privateDenies.length !== PRIVATE_NETWORKS.length || privateDenies.some((r, i) => r.verdict !== 'deny' || r.peer.kind !== 'network' || r.peer.cidr !== PRIVATE_NETWORKS[i])) {
    throw new UnrenderablePolicy('egress must deny the private networks after the builtin denies');
  }
  for (const r of policy.egress.slice(n + PRIVATE_NETWORKS.length)) {
    if (r.verdict !== 'allow') throw new UnrenderablePolicy(`egress deny after an allow (${r.why})`);
    const p = r.peer;
    if (p.kind === 'any') el.egressOpen = true;
    else if (p.kind === 'workspaces') el.egressInternal = true;
    else if (p.kind === 'address') el.egressHosts.push(p.ip);
    else if (p.kind === 'network') el.egressNets.push(p.cidr);
    else if (p.kind === 'hostname') continue; // enforced through DNS grants
    else throw new UnrenderablePolicy(`egress cannot match ${p.kind}`);
  }
  const [first, ...rest] = policy.ingress;
  if (!first || first.verdict !== 'deny' || first.peer.kind !== 'tcp-port' || first.peer.port !== opts.agentPort) {
    throw new UnrenderablePolicy(`ingress must start with the agent port (${opts.agentPort}) deny`);
  }
  for (const r of rest) {
    if (r.verdict !== 'allow') throw new UnrenderablePolicy(`ingress deny after an allow (${r.why})`);
    if (r.peer.kind === 'address') el.ingressHosts.push(r.peer.ip);
    else if (r.peer.kind === 'network') el.ingressNets.push(r.peer.cidr);
    else throw new UnrenderablePolicy(`ingress cannot match ${r.peer.kind}`);
  }
  return el;
}

/** Element lists per set, as nft text (without braces). */
interface SetElements {
  egress_open: string[];
  egress_internal: string[];
  egress_hosts: string[];
  egress_nets: string[];
  ingress_hosts: string[];
  ingress_nets: string[];
  outbound: string[];
}

function elementsOf(p: PolicyElements): SetElements {
  return {
    egress_open: p.egressOpen ? [p.ip] : [],
    egress_internal: p.egressInternal ? [p.ip] : [],
    egress_hosts: p.egressHosts.map((d) => `${p.ip} . ${d}`),
    egress_nets: p.egressNets.map((d) => `${p.ip} . ${d}`),
    ingress_hosts: p.ingressHosts.map((s) => `${p.ip} . ${s}`),
    ingress_nets: p.ingressNets.map((s) => `${p.ip} . ${s}`),
    outbound: p.outboundIp ? [`${p.ip} : ${p.outboundIp}`] : [],
  };
}

const POLICY_SETS = ['egress_open', 'egress_internal', 'egress_hosts', 'egress_nets', 'ingress_hosts', 'ingress_nets', 'outbound'] as const;

function portElement(w: WorkspacePort): string {
  return `${q(w.hostIf)} . ${w.mac} . ${w.ip}`;
}

export function dnsElement(g: DnsGrant): string {
  const t = Math.max(1, Math.min(DNS_GRANT_MAX_S, Math.round(g.timeoutS)));
  return `${g.src} . ${g.dst} timeout ${t}s comment ${q(g.name)}`;
}

function elementsLine(items: string[], indent: string): string[] {
  if (!items.length) return [];
  return [`${indent}elements = { ${items.join(`,\n${indent}             `)} }`];
}

/**
 * The host's neighbours, after workspace-to-workspace traffic has left for
 * `to_workspace` (so the workspace network is the first exception) and
 * before any allow: what the operator allowed (`plan.privateAllowed`) goes on
 * to the workspace's own policy.
 */
function privateDenyRule(plan: NetworkPlan): string {
  const allowed = plan.privateAllowed ?? [];
  const except = allowed.length ? ` ip daddr != { ${allowed.join(', ')} }` : '';
  return `\t\tip daddr { ${PRIVATE_NETWORKS.join(', ')} }${except} drop comment "the host's neighbours: private, CGNAT, benchmarking networks (--egress-allow-private opens a range)"`;
}

/**
 * The whole Hearth ruleset for one bridge. Applied with `nft -f -` it is one
 * transaction: each table is created if missing, deleted, and defined again,
 * so the result is exactly this text whatever was there before.
 */
export function renderRuleset(state: RulesetState): string {
  const { plan, options } = state;
  const t = tableName(plan);
  const br = q(plan.bridge);
  const ports = q(`${plan.linkPrefix}*`);
  const subnet = subnetCidr(plan);
  const gw = gatewayIp(plan);
  const sets: SetElements = { egress_open: [], egress_internal: [], egress_hosts: [], egress_nets: [], ingress_hosts: [], ingress_nets: [], outbound: [] };
  for (const p of [...state.policies].sort(byIp)) {
    const e = elementsOf(p);
    for (const k of POLICY_SETS) sets[k].push(...e[k]);
  }
  const dns = [...(state.dnsGrants ?? [])].sort((a, b) => ipNum(a.src) - ipNum(b.src) || ipNum(a.dst) - ipNum(b.dst)).map(dnsElement);
  const set = (name: string, type: string, comment: string, items: string[], extra: string[] = []) => [
    `\tset ${name} {`, `\t\ttype ${type}`, ...extra.map((x) => `\t\t${x}`), `\t\tcomment ${q(comment)}`, ...elementsLine(items, '\t\t'), '\t}', '',
  ];
  const L: string[] = [];
  L.push(
    `# Hearth host firewall for bridge ${plan.bridge} (${subnet}, gateway ${gw}).`,
    '# Rendered by src/host/network/nft.ts; applied atomically with `nft -f -`.',
    '# Do not edit on a live host: hearthd re-renders it on every start.',
    '',
    `table inet ${t}`,
    `delete table inet ${t}`,
    `table inet ${t} {`,
    ...set('egress_open', 'ipv4_addr', 'workspaces whose egress is open (no list, allow_internet)', sets.egress_open),
    ...set('egress_internal', 'ipv4_addr', 'air-gapped workspaces: other workspaces only', sets.egress_internal),
    ...set('egress_hosts', 'ipv4_addr . ipv4_addr', 'workspace . destination address on its egress list', sets.egress_hosts),
    ...set('egress_nets', 'ipv4_addr . ipv4_addr', 'workspace . destination network on its egress list', sets.egress_nets, ['flags interval']),
    ...set('egress_dns', 'ipv4_addr . ipv4_addr', 'workspace . address Hearth\'s DNS gave it for a name on its egress list', dns, ['flags timeout', 'size 262144']),
    ...set('ingress_hosts', 'ipv4_addr . ipv4_addr', 'workspace . source address on its ingress list', sets.ingress_hosts),
    ...set('ingress_nets', 'ipv4_addr . ipv4_addr', 'workspace . source network on its ingress list', sets.ingress_nets, ['flags interval']),
    '\tmap outbound {',
    '\t\ttype ipv4_addr : ipv4_addr',
    '\t\tcomment "workspace : its own outbound (SNAT) address"',
    ...elementsLine(sets.outbound, '\t\t'),
    '\t}',
    '',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    `\t\tiifname ${br} meta nfproto ipv6 drop comment "workspaces are IPv4-only"`,
    `\t\toifname ${br} meta nfproto ipv6 drop comment "workspaces are IPv4-only"`,
    '\t\tct direction reply ct state established,related accept comment "replies of connections the policy allowed"',
    `\t\tiifname ${br} jump from_workspace comment "every packet a workspace sends through the host: its policy, on every packet"`,
    `\t\toifname ${br} drop comment "nothing outside may open connections to workspaces (the edge proxy runs on the host)"`,
    '\t}',
    '',
    '\tchain from_workspace {',
    `\t\tip saddr != ${subnet} drop comment "anti-spoofing (the bridge table checks port, MAC and address)"`,
    ...BUILTIN_EGRESS_DENY.map((r) => `\t\tip daddr ${(r.peer as { cidr: string }).cidr} drop comment ${q(`never: ${r.why}`)}`),
    `\t\toifname ${br} jump to_workspace comment "workspace to workspace: both sides' policies"`,
    privateDenyRule(plan),
    '\t\tip saddr @egress_open accept comment "egress open"',
    '\t\tip saddr . ip daddr @egress_hosts accept comment "egress list: address"',
    '\t\tip saddr . ip daddr @egress_nets accept comment "egress list: network"',
    `\t\tip saddr . ip daddr @egress_dns update @egress_dns { ip saddr . ip daddr timeout ${DNS_GRANT_MIN_S}s } accept comment "egress list: hostname, as resolved (kept alive while used)"`,
    '\t\tdrop comment "default deny (egress)"',
    '\t}',
    '',
    '\tchain to_workspace {',
    `\t\ttcp dport ${options.agentPort} drop comment "the guest agent answers the host only"`,
    '\t\tip daddr . ip saddr != @ingress_hosts ip daddr . ip saddr != @ingress_nets drop comment "the target\'s ingress does not name the source (default deny)"',
    '\t\tip saddr @egress_open accept comment "source egress open"',
    '\t\tip saddr @egress_internal accept comment "source air-gapped: workspaces allowed"',
    '\t\tip saddr . ip daddr @egress_hosts accept comment "source egress list: address"',
    '\t\tip saddr . ip daddr @egress_nets accept comment "source egress list: network"',
    '\t\tip saddr . ip daddr @egress_dns accept comment "source egress list: hostname, as resolved"',
    '\t\tdrop comment "the source\'s egress does not allow the target"',
    '\t}',
    '',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy accept;',
    `\t\tiifname ${br} jump to_host comment "protect the host from its workspaces"`,
    '\t}',
    '',
    '\tchain to_host {',
    '\t\tct state established,related accept comment "replies to the host\'s own connections (hearthd to agents)"',
  );
  if (options.dns) {
    L.push(`\t\tip daddr ${gw} udp dport 53 accept comment "Hearth's DNS forwarder"`);
    L.push(`\t\tip daddr ${gw} tcp dport 53 accept comment "Hearth's DNS forwarder"`);
  }
  if (options.hearthPort) {
    // After the redirect below: the packet is for hearthd's own port. The rules are the internet's.
    const to = `ip daddr ${gw} tcp dport ${options.hearthPort}`;
    L.push(`\t\t${to} ip saddr @egress_open accept comment "Hearth's API and data plane: open egress reaches them"`);
    L.push(`\t\t${to} ip saddr . ip daddr @egress_hosts accept comment "Hearth's API and data plane: the egress list names the gateway"`);
    L.push(`\t\t${to} ip saddr . ip daddr @egress_dns accept comment "Hearth's API and data plane: the egress list names them"`);
  }
  L.push(
    '\t\tdrop comment "workspaces must not reach host services (hearthd listeners, sshd, ...)"',
    '\t}',
    '',
    '\tchain output {',
    '\t\ttype filter hook output priority filter; policy accept;',
    `\t\toifname ${br} icmp type redirect drop comment "traffic between workspaces stays routed through the host"`,
    ...(options.vmUids ? [`\t\tmeta skuid ${options.vmUids.first}-${options.vmUids.last} reject with icmpx admin-prohibited comment "QEMU (a VM's uid) opens no socket to anything: not loopback, not an agent, not the internet"`] : []),
    '\t}',
    '',
    ...(options.hearthPort ? [
      '\tchain prerouting {',
      '\t\ttype nat hook prerouting priority dstnat; policy accept;',
      `\t\tiifname ${br} ip daddr ${gw} tcp dport ${INTERNAL_PORT} redirect to :${options.hearthPort} comment "api/runtime.hearth.internal: hearthd's workspace-facing listener"`,
      '\t}',
      '',
    ] : []),
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    `\t\toifname ${br} return comment "between workspaces: no NAT (the target sees the real source)"`,
    `\t\tip saddr ${subnet} snat ip to ip saddr map @outbound comment "the workspace's own outbound IP"`,
    options.outboundIp
      ? `\t\tip saddr ${subnet} snat ip to ${options.outboundIp} comment "the host's outbound IP for workspaces (--outbound-ip)"`
      : `\t\tip saddr ${subnet} masquerade comment "NAT for workspace egress (address of the outgoing interface)"`,
    '\t}',
    '}',
    '',
    `table bridge ${t}`,
    `delete table bridge ${t}`,
    `table bridge ${t} {`,
    '\tset ports {',
    '\t\ttype ifname . ether_addr . ipv4_addr',
    '\t\tcomment "port, MAC and address of every attached workspace"',
    ...elementsLine([...state.ports].sort(byIp).map(portElement), '\t\t'),
    '\t}',
    '',
    '\tchain prerouting {',
    '\t\ttype filter hook prerouting priority filter; policy accept;',
    `\t\tiifname ${ports} jump from_workspace comment "every frame a workspace sends"`,
    '\t}',
    '',
    '\tchain from_workspace {',
    '\t\tiifname . ether saddr . ip saddr @ports return comment "IPv4 from its own port, MAC and address"',
    '\t\tether type arp iifname . ether saddr . arp saddr ip @ports iifname . arp saddr ether . arp saddr ip @ports return comment "ARP about itself only"',
    '\t\tdrop comment "spoofed, unattached, IPv6 or non-IP frames"',
    '\t}',
    '',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    `\t\tiifname ${ports} oifname ${ports} drop comment "never switched between workspaces (ports are isolated; traffic is routed through the policy)"`,
    '\t}',
    '}',
    '',
  );
  return L.join('\n');
}

/** Set-element update that makes a port attached (idempotent). */
export function renderAttachElements(plan: NetworkPlan, w: WorkspacePort): string {
  return `add element bridge ${tableName(plan)} ports { ${portElement(w)} }\n`;
}

/**
 * Set-element update that removes a port (idempotent): nft 1.0.6 has no
 * `destroy element`, so each delete is preceded by an add of the same
 * element in the same transaction, which makes a missing element harmless.
 */
export function renderDetachElements(plan: NetworkPlan, w: WorkspacePort): string {
  const t = tableName(plan);
  return `add element bridge ${t} ports { ${portElement(w)} }\ndelete element bridge ${t} ports { ${portElement(w)} }\n`;
}

/**
 * A policy's elements without `ip` as a peer (ingress source or egress
 * destination host), or null when it names `ip` nowhere. Only allows are
 * removed, so the result never reaches more than before.
 */
export function elementsWithoutPeer(el: PolicyElements, ip: string): PolicyElements | null {
  if (!el.ingressHosts.includes(ip) && !el.egressHosts.includes(ip)) return null;
  return { ...el, ingressHosts: el.ingressHosts.filter((h) => h !== ip), egressHosts: el.egressHosts.filter((h) => h !== ip) };
}

/**
 * One transaction taking a workspace's policy elements from `before` to
 * `after` (either may be null: created / removed), plus removing the DNS
 * grants listed. Only the difference is touched; deletes are tolerant (add
 * then delete). Empty string when nothing changes.
 */
export function renderPolicyUpdate(plan: NetworkPlan, before: PolicyElements | null, after: PolicyElements | null, dnsRemove: DnsGrant[] = []): string {
  const t = tableName(plan);
  const empty: SetElements = { egress_open: [], egress_internal: [], egress_hosts: [], egress_nets: [], ingress_hosts: [], ingress_nets: [], outbound: [] };
  const b = before ? elementsOf(before) : empty;
  const a = after ? elementsOf(after) : empty;
  const lines: string[] = [];
  for (const k of POLICY_SETS) {
    for (const el of b[k]) if (!a[k].includes(el)) lines.push(`add element inet ${t} ${k} { ${el} }`, `delete element inet ${t} ${k} { ${el} }`);
  }
  for (const g of dnsRemove) {
    const el = `${g.src} . ${g.dst}`;
    lines.push(`add element inet ${t} egress_dns { ${el} timeout 1s }`, `delete element inet ${t} egress_dns { ${el} }`);
  }
  for (const k of POLICY_SETS) {
    for (const el of a[k]) if (!b[k].includes(el)) lines.push(`add element inet ${t} ${k} { ${el} }`);
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}

/**
 * Grants for addresses a DNS answer gave a workspace: delete-then-add, so an
 * existing grant is renewed with the new timeout and name.
 */
export function renderDnsGrants(plan: NetworkPlan, grants: DnsGrant[]): string {
  const t = tableName(plan);
  const lines: string[] = [];
  for (const g of grants) {
    const key = `${g.src} . ${g.dst}`;
    lines.push(`add element inet ${t} egress_dns { ${key} timeout 1s }`, `delete element inet ${t} egress_dns { ${key} }`, `add element inet ${t} egress_dns { ${dnsElement(g)} }`);
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}

// ------------------------------------------------------------------ reading the loaded state back

/** What `nft -j list table` says, typed to what Hearth's sets hold. */
export interface LoadedState {
  ports: WorkspacePort[];
  policies: PolicyElements[];
  dnsGrants: DnsGrant[];
}

type JsonVal = string | number | { prefix?: { addr: string; len: number }; concat?: JsonVal[]; range?: JsonVal[]; elem?: { val: JsonVal; expires?: number; timeout?: number; comment?: string } } | JsonVal[];

function scalar(v: JsonVal): string {
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  if (Array.isArray(v)) throw new Error('unexpected list');
  if (v.prefix) return `${v.prefix.addr}/${v.prefix.len}`;
  if (v.range) return `${scalar(v.range[0]!)}-${scalar(v.range[1]!)}`;
  throw new Error(`unexpected element ${JSON.stringify(v)}`);
}

function unwrap(v: JsonVal): { val: JsonVal; expires?: number; comment?: string } {
  if (v && typeof v === 'object' && !Array.isArray(v) && v.elem) return v.elem;
  return { val: v };
}

/** Parse `nft -j list table inet|bridge <t>` outputs (either may be empty) into the typed state. */
export function parseLoaded(inetJson: string, bridgeJson: string): LoadedState {
  const sets = new Map<string, JsonVal[]>();
  for (const json of [inetJson, bridgeJson]) {
    const doc = JSON.parse(json || '{}') as { nftables?: { set?: { name: string; elem?: JsonVal[] }; map?: { name: string; elem?: JsonVal[] } }[] };
    for (const item of doc.nftables ?? []) {
      const s = item.set ?? item.map;
      if (s) sets.set(s.name, s.elem ?? []);
    }
  }
  const pol = new Map<string, PolicyElements>();
  const get = (ip: string) => {
    let p = pol.get(ip);
    if (!p) pol.set(ip, (p = { ip, egressOpen: false, egressInternal: false, egressHosts: [], egressNets: [], ingressHosts: [], ingressNets: [], outboundIp: null }));
    return p;
  };
  const pairs = (name: string) => (sets.get(name) ?? []).map((e) => {
    const { val } = unwrap(e);
    const c = (val as { concat?: JsonVal[] }).concat;
    if (!c || c.length !== 2) throw new Error(`set ${name}: unexpected element ${JSON.stringify(e)}`);
    return [scalar(c[0]!), scalar(c[1]!)] as const;
  });
  for (const e of sets.get('egress_open') ?? []) get(scalar(unwrap(e).val)).egressOpen = true;
  for (const e of sets.get('egress_internal') ?? []) get(scalar(unwrap(e).val)).egressInternal = true;
  for (const [w, d] of pairs('egress_hosts')) get(w).egressHosts.push(d);
  for (const [w, d] of pairs('egress_nets')) get(w).egressNets.push(d);
  for (const [w, s] of pairs('ingress_hosts')) get(w).ingressHosts.push(s);
  for (const [w, s] of pairs('ingress_nets')) get(w).ingressNets.push(s);
  for (const e of sets.get('outbound') ?? []) {
    const [k, v] = e as JsonVal[];
    get(scalar(k!)).outboundIp = scalar(v!);
  }
  const dnsGrants: DnsGrant[] = (sets.get('egress_dns') ?? []).map((e) => {
    const { val, expires, comment } = unwrap(e);
    const [src, dst] = (val as { concat: JsonVal[] }).concat.map(scalar) as [string, string];
    return { src, dst, name: comment ?? '', timeoutS: expires ?? DNS_GRANT_MIN_S };
  });
  const ports: WorkspacePort[] = (sets.get('ports') ?? []).map((e) => {
    const c = (unwrap(e).val as { concat: JsonVal[] }).concat.map(scalar) as [string, string, string];
    return { hostIf: c[0], mac: c[1], ip: c[2] };
  });
  return { ports, policies: [...pol.values()].sort(byIp), dnsGrants };
}
