/**
 * Where a pull may connect: the one outbound policy of the registry client.
 * A tenant names any registry, and a registry names where its redirects and
 * token realm go, so without a policy a pull is a request forgery from the
 * host (loopback services, link-local cloud metadata, the host's LAN).
 *
 * - Only http and https; plain http only to a host the operator listed.
 * - No loopback, link-local, private (RFC 1918, CGNAT 100.64/10, ULA,
 *   site-local), unspecified, multicast, documentation, benchmarking or other
 *   reserved address, by literal or by DNS, unless the operator listed the
 *   host: HEARTH_PRIVATE_REGISTRIES=host[:port],… and the hosts of
 *   HEARTH_INSECURE_REGISTRIES and HEARTH_REGISTRY_MIRROR count as listed.
 *   A listed host without a port is listed on every port.
 * - Every URL is checked: the registry's, every redirect hop's, the token
 *   realm's. Names are checked where they are resolved, by the `lookup` of
 *   the connection itself, so a name that resolves to a public address when
 *   checked and to 127.0.0.1 when connecting (DNS rebinding) gets nowhere.
 *   IPv4-mapped, NAT64 and 6to4 IPv6 addresses are judged by the IPv4
 *   address they carry.
 */
import dns from 'node:dns';
import net from 'node:net';

export type AddressClass = 'public' | 'loopback' | 'link-local' | 'private' | 'unspecified' | 'multicast' | 'reserved';

export class OutboundRefusedError extends Error {
  readonly code = 'EHEARTHOUTBOUND';
  constructor(readonly target: string, readonly reason: string) {
    super(`refused to connect to ${target}: ${reason}`);
    this.name = 'OutboundRefusedError';
  }
}

export interface OutboundPolicy {
  /** Operator-listed `host` or `host:port` entries (lower case, IPv6 in brackets) that may be non-public and plain http. */
  listed: readonly string[];
  /** Name resolution for connections (default: the system resolver, dns.lookup); tests give their own. */
  resolve?: Resolver;
}

/** The IPv4 address as 4 bytes, or null. */
function v4Bytes(ip: string): number[] | null {
  if (net.isIPv4(ip)) return ip.split('.').map(Number);
  return null;
}

/** The IPv6 address as 16 bytes, or null. */
function v6Bytes(ip: string): number[] | null {
  if (!net.isIPv6(ip)) return null;
  let s = ip.replace(/%.*$/, '');
  let tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    tail = v4Bytes(dotted[1]!) ?? [];
    s = s.slice(0, -dotted[1]!.length);
    s = s.endsWith('::') ? s : s.replace(/:$/, '');
  }
  const [head, rest] = s.includes('::') ? s.split('::') as [string, string] : [s, null];
  const groups = (x: string) => (x ? x.split(':').map((g) => parseInt(g, 16)) : []);
  const h = groups(head);
  const r = rest === null ? [] : groups(rest);
  const fill = 8 - tail.length / 2 - h.length - r.length;
  const all = [...h, ...(rest === null ? [] : new Array<number>(Math.max(0, fill)).fill(0)), ...r];
  const out: number[] = [];
  for (const g of all) out.push(g >> 8, g & 0xff);
  out.push(...tail);
  return out.length === 16 ? out : null;
}

function inPrefix(bytes: number[], prefix: number[], bits: number): boolean {
  for (let i = 0; i < bits; i++) {
    const b = i >> 3;
    const mask = 0x80 >> (i & 7);
    if ((bytes[b]! & mask) !== ((prefix[b] ?? 0) & mask)) return false;
  }
  return true;
}

const V4: Array<[number[], number, AddressClass]> = [
  [[0, 0, 0, 0], 8, 'unspecified'],
  [[10, 0, 0, 0], 8, 'private'],
  [[100, 64, 0, 0], 10, 'private'], // CGNAT
  [[127, 0, 0, 0], 8, 'loopback'],
  [[169, 254, 0, 0], 16, 'link-local'], // cloud metadata lives here
  [[172, 16, 0, 0], 12, 'private'],
  [[192, 0, 0, 0], 24, 'reserved'],
  [[192, 0, 2, 0], 24, 'reserved'],
  [[192, 88, 99, 0], 24, 'reserved'],
  [[192, 168, 0, 0], 16, 'private'],
  [[198, 18, 0, 0], 15, 'reserved'], // benchmarking
  [[198, 51, 100, 0], 24, 'reserved'],
  [[203, 0, 113, 0], 24, 'reserved'],
  [[224, 0, 0, 0], 4, 'multicast'],
  [[240, 0, 0, 0], 4, 'reserved'], // and 255.255.255.255
];

const V6: Array<[number[], number, AddressClass]> = [
  [[], 128, 'unspecified'],
  [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 128, 'loopback'],
  [[], 96, 'reserved'], // IPv4-compatible (deprecated)
  [[0, 0x64, 0xff, 0x9b, 0, 1], 48, 'private'], // local-use NAT64
  [[1, 0, 0, 0, 0, 0, 0, 0], 64, 'reserved'], // discard
  [[0x20, 0x01, 0, 0], 32, 'reserved'], // Teredo
  [[0x20, 0x01, 0x0d, 0xb8], 32, 'reserved'], // documentation
  [[0xfc], 7, 'private'], // ULA
  [[0xfe, 0x80], 10, 'link-local'],
  [[0xfe, 0xc0], 10, 'private'], // site-local
  [[0xff], 8, 'multicast'],
];

function classifyV4(b: number[]): AddressClass {
  for (const [p, bits, cls] of V4) if (inPrefix(b, p, bits)) return cls;
  return 'public';
}

/** What kind of address `ip` is (a literal IPv4 or IPv6 address); anything unparsable is 'reserved'. */
export function classifyAddress(ip: string): AddressClass {
  const a = v4Bytes(ip);
  if (a) return classifyV4(a);
  const b = v6Bytes(ip.replace(/^\[|\]$/g, ''));
  if (!b) return 'reserved';
  // Addresses that carry an IPv4 address are what that address is.
  if (inPrefix(b, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 96)) return classifyV4(b.slice(12));
  if (inPrefix(b, [0, 0x64, 0xff, 0x9b], 96)) return classifyV4(b.slice(12));
  if (inPrefix(b, [0x20, 0x02], 16)) return classifyV4(b.slice(2, 6));
  for (const [p, bits, cls] of V6) if (inPrefix(b, p, bits)) return cls;
  return 'public';
}

/** `host` (lower case, IPv6 in brackets) and port (defaulted by scheme) of a URL. */
export function urlHost(url: URL): { host: string; port: string } {
  return { host: url.hostname.toLowerCase(), port: url.port || (url.protocol === 'https:' ? '443' : '80') };
}

/** Normalize a listed entry: `Host:5000` → `host:5000`, `http://h:1/` → `h:1`, `::1` → `[::1]`. */
export function normalizeListed(entry: string): string {
  let e = entry.trim().toLowerCase().replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
  if (net.isIPv6(e)) e = `[${e}]`;
  return e;
}

/** Whether the operator listed this URL's host (on any port, or on this one). */
export function isListed(policy: OutboundPolicy, url: URL): boolean {
  const { host, port } = urlHost(url);
  return policy.listed.some((l) => l === host || l === `${host}:${port}`);
}

/**
 * Check a URL before connecting: scheme, plain http only when listed, an
 * address literal only when public or listed. Names are checked again at
 * connection time by `checkedLookup`.
 */
export function checkUrl(policy: OutboundPolicy, url: URL): void {
  const target = url.host;
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new OutboundRefusedError(target, `the scheme ${url.protocol} is not http or https`);
  if (url.username || url.password) throw new OutboundRefusedError(target, 'URLs with credentials in them are not followed');
  const listed = isListed(policy, url);
  if (url.protocol === 'http:' && !listed) throw new OutboundRefusedError(target, 'plain http is only used for registries an operator listed (HEARTH_INSECURE_REGISTRIES or HEARTH_PRIVATE_REGISTRIES)');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host) && !listed) {
    const cls = classifyAddress(host);
    if (cls !== 'public') throw new OutboundRefusedError(target, `${host} is a ${cls} address, and ${url.host} is not listed in HEARTH_PRIVATE_REGISTRIES`);
  }
  const name = host.replace(/\.+$/, '');
  if (!net.isIP(host) && !listed && (name === 'localhost' || name.endsWith('.localhost'))) {
    throw new OutboundRefusedError(target, `${host} is loopback, and it is not listed in HEARTH_PRIVATE_REGISTRIES`);
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;
export type Resolver = (hostname: string, options: dns.LookupAllOptions, cb: (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void) => void;

/**
 * A `lookup` for the connection to `url`: resolves with the system resolver
 * (or the policy's `resolve`, for tests) and keeps only public addresses, unless the host
 * is listed. No address left: the connection fails with OutboundRefusedError.
 */
export function checkedLookup(policy: OutboundPolicy, url: URL) {
  const resolve = policy.resolve ?? (dns.lookup as unknown as Resolver);
  const listed = isListed(policy, url);
  return (hostname: string, options: dns.LookupOptions, cb: LookupCallback): void => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return cb(err, '');
      const ok = listed ? addresses : addresses.filter((a) => classifyAddress(a.address) === 'public');
      if (ok.length === 0) {
        const seen = addresses.map((a) => `${a.address} (${classifyAddress(a.address)})`).join(', ') || 'no address';
        return cb(new OutboundRefusedError(url.host, `${hostname} resolves to ${seen}, and it is not listed in HEARTH_PRIVATE_REGISTRIES`), '');
      }
      if (options.all) return cb(null, ok);
      return cb(null, ok[0]!.address, ok[0]!.family);
    });
  };
}
