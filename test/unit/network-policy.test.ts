/**
 * The network policy as data (src/core/network-policy.ts): what the stored
 * config means, as first-match rule lists, checked through `evaluate` (the
 * reference semantics the nft rendering implements) and the DNS verdicts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  addressPeers, BUILTIN_EGRESS_DENY, buildPolicy, dnsVerdict, evaluate, parsePrivateAllowed, type NetworkPolicy, type PolicyConfig,
} from '../../src/core/network-policy.ts';

const subnet = '10.88.0.0/16';
const A = '10.88.0.2', B = '10.88.0.3', C = '10.88.0.4', NET = '203.0.113.10';
const p = (ip: string, c: Partial<PolicyConfig>) => buildPolicy({ allow_internet: true, ingress: [], egress: [], ...c }, { ip, subnet, agentPort: 9990 });

/** The reference: can `src` open a connection to `dst` (port) given both policies (dst may be outside)? */
function reach(src: NetworkPolicy, dst: NetworkPolicy | string, port = 80, hostnames: string[] = []): boolean {
  const dip = typeof dst === 'string' ? dst : dst.ip;
  if (evaluate(src.egress, { ip: dip, hostnames }, subnet).verdict !== 'allow') return false;
  if (typeof dst === 'string') return true;
  return evaluate(dst.ingress, { ip: src.ip, tcpPort: port }, subnet).verdict === 'allow';
}

test('default: workspaces are invisible to each other, egress open', () => {
  const [a, b] = [p(A, {}), p(B, {})];
  assert.equal(reach(a, b), false);
  assert.equal(reach(b, a), false);
  assert.equal(reach(a, NET), true);
});

test('ingress names the source: only that source gets in, never on the agent port', () => {
  const [a, b, c] = [p(A, {}), p(B, { ingress: [A] }), p(C, {})];
  assert.equal(reach(a, b), true);
  assert.equal(reach(c, b), false);
  assert.equal(reach(a, b, 9990), false, 'the agent answers the host only');
  assert.equal(reach(p(C, {}), p(B, { ingress: ['10.88.0.0/24'] })), true, 'a CIDR source');
});

test('egress list: exactly those destinations, whatever allow_internet says', () => {
  const a = p(A, { egress: [B] });
  assert.equal(reach(a, p(B, { ingress: [A] })), true);
  assert.equal(reach(a, p(C, { ingress: [A] })), false);
  assert.equal(reach(a, NET), false);
  const withNet = p(A, { egress: ['203.0.113.0/24'], allow_internet: false });
  assert.equal(reach(withNet, NET), true, 'air-gapped, but egress names it');
  assert.equal(reach(withNet, '198.51.100.1'), false);
});

test('air-gapped without a list: other workspaces (if they accept), nothing outside', () => {
  const a = p(A, { allow_internet: false });
  assert.equal(reach(a, NET), false);
  assert.equal(reach(a, p(B, { ingress: [A] })), true);
  assert.equal(reach(a, p(B, {})), false);
});

test('builtin denies come first: cloud metadata is never reachable, even when listed', () => {
  for (const pol of [p(A, {}), p(A, { egress: ['169.254.169.254'] }), p(A, { egress: ['0.0.0.0/0'] })]) {
    assert.deepEqual(pol.egress.slice(0, BUILTIN_EGRESS_DENY.length), [...BUILTIN_EGRESS_DENY]);
    assert.equal(reach(pol, '169.254.169.254'), false);
    assert.equal(reach(pol, '224.0.0.251'), false);
  }
});

test('hostnames: allowed only as resolved; DNS verdicts fail closed', () => {
  const a = p(A, { egress: ['API.example.com.', B] });
  assert.equal(reach(a, '198.51.100.7'), false);
  assert.equal(reach(a, '198.51.100.7', 80, ['api.example.com']), true);
  assert.equal(dnsVerdict(a, 'api.example.com'), 'learn');
  assert.equal(dnsVerdict(a, 'Api.Example.Com.'), 'learn');
  assert.equal(dnsVerdict(a, 'evil.example.com'), 'refuse');
  assert.equal(dnsVerdict(p(A, {}), 'anything.example'), 'pass');
  assert.equal(dnsVerdict(p(A, { allow_internet: false }), 'anything.example'), 'refuse');
  assert.equal(dnsVerdict(undefined, 'anything.example'), 'refuse', 'not a workspace');
});

test('address entries: /32 are addresses, covered entries dropped, duplicates once', () => {
  assert.deepEqual(addressPeers(['10.1.2.3', '10.1.2.3/32', '10.1.0.0/16', '10.1.9.9', '10.2.3.4/24', '10.2.3.0/24']), [
    { kind: 'network', cidr: '10.1.0.0/16' }, { kind: 'network', cidr: '10.2.3.0/24' },
  ]);
  assert.deepEqual(addressPeers(['10.1.2.3', '10.1.2.3/32']), [{ kind: 'address', ip: '10.1.2.3' }]);
});

test('outbound IP: only an IPv4 address is taken; anything else means none', () => {
  assert.equal(p(A, { outbound_ip: '192.0.2.10' }).outboundIp, '192.0.2.10');
  assert.equal(p(A, { outbound_ip: 'nope' }).outboundIp, null);
  assert.equal(p(A, {}).outboundIp, null);
});

test('malformed stored config fails closed (no list entries, still default deny)', () => {
  const weird = buildPolicy({ allow_internet: false, ingress: 'x' as never, egress: [42] as never }, { ip: A, subnet, agentPort: 9990 });
  assert.equal(reach(weird, NET), false);
  assert.equal(reach(p(B, {}), weird), false);
});

test('the host\'s neighbours: private, CGNAT and benchmarking networks are denied, listed or resolved, except workspaces', () => {
  const neighbours = ['192.168.1.10', '10.1.2.3', '172.17.0.1', '100.64.0.5', '198.18.0.1'];
  const open = p(A, {});
  for (const ip of neighbours) assert.equal(reach(open, ip), false, `open egress must not reach ${ip}`);
  const listed = p(A, { egress: ['192.168.1.10', '10.0.0.0/8', 'lan.example'] });
  for (const ip of neighbours) assert.equal(reach(listed, ip, 80, ['lan.example']), false, `a tenant's list cannot name ${ip}`);
  // Workspaces are inside 10/8 and still reach each other by their policies.
  const b = p(B, { ingress: [A] });
  assert.equal(reach(p(A, { allow_internet: false }), b), true, 'the workspace network is the exception');
  assert.equal(reach(open, '203.0.113.10'), true, 'the internet stays open');
});

test('the operator opens a private range to every workspace\'s policy, and only that range', () => {
  const ctx = { subnet, agentPort: 9990, privateAllowed: parsePrivateAllowed(['192.168.5.7/24']) };
  assert.deepEqual(ctx.privateAllowed, ['192.168.5.0/24'], 'canonical form');
  const open = buildPolicy({ allow_internet: true, ingress: [], egress: [] }, { ...ctx, ip: A });
  assert.equal(reach(open, '192.168.5.20'), true);
  assert.equal(reach(open, '192.168.6.20'), false);
  const gapped = buildPolicy({ allow_internet: false, ingress: [], egress: [] }, { ...ctx, ip: A });
  assert.equal(reach(gapped, '192.168.5.20'), false, 'the workspace\'s own policy still applies');
  assert.throws(() => parsePrivateAllowed(['203.0.113.0/24']), /not inside a private range/);
  assert.throws(() => parsePrivateAllowed(['lan']), /not an IPv4/);
});
