/**
 * Hearth's host firewall as data rendered to nftables text (STYLE §8).
 *
 * Everything here is pure: `renderRuleset(state)` returns the one ruleset
 * string that `HostNetwork.ensure()` feeds to `nft -f -`, and the small
 * `render*Elements` helpers return the set-element updates applied by
 * attach/detach/setInternet. Golden tests pin the text
 * (test/golden/nft-ruleset.nft). OPERATIONS.md beside this file explains
 * the layout and how to inspect it on a live host.
 *
 * Two tables per bridge, both named `hearth_<bridge>` so test instances on
 * different bridges never collide:
 *   - `inet`   routed traffic: host protection (input), egress/air-gap
 *              (forward) and NAT (postrouting);
 *   - `bridge` L2 traffic between the bridge ports: anti-spoofing and
 *              workspace-to-workspace isolation. Frames switched between two
 *              ports never reach the inet forward hook unless br_netfilter is
 *              loaded, so isolation must live here.
 */
import { gatewayIp, parseCidr, intToIp, type NetworkPlan } from './slot.ts';

/** What the firewall knows about one attached workspace. */
export interface WorkspaceNet {
  /** Host-side link on the bridge (slot.hostIf). */
  hostIf: string;
  ip: string;
  mac: string;
  allowInternet: boolean;
}

/** Optional services the host itself offers to workspaces on the bridge. None today. */
export interface HostServices {
  dhcp?: boolean;
  dns?: boolean;
}

export interface RulesetState {
  plan: NetworkPlan;
  workspaces: WorkspaceNet[];
  hostServices?: HostServices;
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

function byIp(a: WorkspaceNet, b: WorkspaceNet): number {
  const n = (ip: string) => ip.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
  return n(a.ip) - n(b.ip);
}

function elements(items: string[], indent: string): string[] {
  if (!items.length) return [];
  return [`${indent}elements = { ${items.join(`,\n${indent}             `)} }`];
}

function portElement(w: Pick<WorkspaceNet, 'hostIf' | 'mac' | 'ip'>): string {
  return `${q(w.hostIf)} . ${w.mac} . ${w.ip}`;
}

/**
 * The whole Hearth ruleset for one bridge. Applied with `nft -f -` it is one
 * transaction: each table is created if missing, deleted, and defined again,
 * so the result is exactly this text whatever was there before.
 */
export function renderRuleset(state: RulesetState): string {
  const { plan } = state;
  const t = tableName(plan);
  const br = q(plan.bridge);
  const ports = q(`${plan.linkPrefix}*`);
  const subnet = subnetCidr(plan);
  const ws = [...state.workspaces].sort(byIp);
  const svc = state.hostServices ?? {};
  const L: string[] = [];
  L.push(
    `# Hearth host firewall for bridge ${plan.bridge} (${subnet}, gateway ${gatewayIp(plan)}).`,
    '# Rendered by src/host/network/nft.ts; applied atomically with `nft -f -`.',
    '# Do not edit on a live host: `hearth` re-renders it on every start.',
    '',
    `table inet ${t}`,
    `delete table inet ${t}`,
    `table inet ${t} {`,
    '\tset ws_ips {',
    '\t\ttype ipv4_addr',
    '\t\tcomment "every attached workspace address"',
    ...elements(ws.map((w) => w.ip), '\t\t'),
    '\t}',
    '',
    '\tset no_internet {',
    '\t\ttype ipv4_addr',
    '\t\tcomment "workspaces with allow_internet:false: nothing they send leaves the host"',
    ...elements(ws.filter((w) => !w.allowInternet).map((w) => w.ip), '\t\t'),
    '\t}',
    '',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    `\t\tiifname ${br} oifname ${br} accept comment "bridged between workspaces (only seen with br_netfilter): policed by table bridge ${t}"`,
    `\t\tiifname ${br} meta nfproto ipv6 drop comment "workspaces are IPv4-only"`,
    `\t\tiifname ${br} ip saddr != ${subnet} drop comment "anti-spoofing: only bridge addresses leave through the bridge"`,
    `\t\tiifname ${br} ip saddr @no_internet drop comment "air-gap: allow_internet:false (before conntrack, so a live change cuts open flows)"`,
    '\t\tct state established,related accept comment "replies to connections already allowed"',
    `\t\tiifname ${br} accept comment "egress to other interfaces (masqueraded below)"`,
    `\t\toifname ${br} drop comment "nothing outside may open connections to workspaces (the edge proxy runs on the host)"`,
    '\t}',
    '',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy accept;',
    `\t\tiifname ${br} jump from_workspaces comment "protect the host from its workspaces"`,
    '\t}',
    '',
    '\tchain from_workspaces {',
    '\t\tct state established,related accept comment "replies to the host\'s own connections (hearthd to agents)"',
  );
  if (svc.dhcp) L.push('\t\tudp dport 67 accept comment "DHCP served by the host"');
  if (svc.dns) {
    L.push('\t\tudp dport 53 accept comment "DNS served by the host"');
    L.push('\t\ttcp dport 53 accept comment "DNS served by the host"');
  }
  L.push(
    '\t\tdrop comment "workspaces must not reach host services (hearthd listeners, sshd, ...)"',
    '\t}',
    '',
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    `\t\tip saddr ${subnet} oifname != ${br} masquerade comment "NAT for workspace egress"`,
    '\t}',
    '}',
    '',
    `table bridge ${t}`,
    `delete table bridge ${t}`,
    `table bridge ${t} {`,
    '\tset ports {',
    '\t\ttype ifname . ether_addr . ipv4_addr',
    '\t\tcomment "port, MAC and address of every attached workspace"',
    ...elements(ws.map(portElement), '\t\t'),
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
    `\t\tiifname ${ports} oifname ${ports} drop comment "workspaces are invisible to each other (private networking inserts its allows above)"`,
    '\t}',
    '}',
    '',
  );
  return L.join('\n');
}

/** Set-element updates that make `w` attached (idempotent). */
export function renderAttachElements(plan: NetworkPlan, w: WorkspaceNet): string {
  const t = tableName(plan);
  return [
    `add element inet ${t} ws_ips { ${w.ip} }`,
    ...renderInternetLines(t, w.ip, w.allowInternet),
    `add element bridge ${t} ports { ${portElement(w)} }`,
    '',
  ].join('\n');
}

/**
 * Set-element updates that remove `w` (idempotent): nft 1.0.6 has no
 * `destroy element`, so each delete is preceded by an add of the same
 * element in the same transaction, which makes a missing element harmless.
 */
export function renderDetachElements(plan: NetworkPlan, w: Pick<WorkspaceNet, 'hostIf' | 'ip' | 'mac'>): string {
  const t = tableName(plan);
  const lines: string[] = [];
  for (const [family, set, el] of [
    ['bridge', 'ports', portElement(w)],
    ['inet', 'no_internet', w.ip],
    ['inet', 'ws_ips', w.ip],
  ] as const) {
    lines.push(`add element ${family} ${t} ${set} { ${el} }`, `delete element ${family} ${t} ${set} { ${el} }`);
  }
  lines.push('');
  return lines.join('\n');
}

/** Set-element updates for a live allow_internet change (idempotent). */
export function renderInternetElements(plan: NetworkPlan, ip: string, allow: boolean): string {
  return [...renderInternetLines(tableName(plan), ip, allow), ''].join('\n');
}

function renderInternetLines(t: string, ip: string, allow: boolean): string[] {
  return allow
    ? [`add element inet ${t} no_internet { ${ip} }`, `delete element inet ${t} no_internet { ${ip} }`]
    : [`add element inet ${t} no_internet { ${ip} }`];
}
