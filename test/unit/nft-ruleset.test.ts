/**
 * The host firewall as text: renderRuleset is pinned against
 * test/golden/nft-ruleset.nft (regenerate deliberately with UPDATE_GOLDEN=1
 * and review the diff); the live updates are pinned inline, and the
 * JSON read-back is checked to give back what was rendered.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  parseLoaded, policyElements, renderAttachElements, renderDetachElements, renderDnsGrants, renderPolicyUpdate, renderRuleset, subnetCidr, tableName,
  UnrenderablePolicy, type RulesetState,
} from '../../src/host/network/nft.ts';
import { buildPolicy, type PolicyConfig } from '../../src/core/network-policy.ts';
import { DEFAULT_NETWORK_PLAN, slotFor } from '../../src/host/network/slot.ts';
import { golden } from '../helpers/golden.ts';


const plan = DEFAULT_NETWORK_PLAN;
const options = { agentPort: 9990, dns: true, outboundIp: null };
const port = (i: number) => { const s = slotFor(plan, i); return { hostIf: s.hostIf, ip: s.ip, mac: s.mac }; };
const pol = (i: number, c: Partial<PolicyConfig>) => policyElements(
  buildPolicy({ allow_internet: true, ingress: [], egress: [], ...c }, { ip: slotFor(plan, i).ip, subnet: plan.subnet, agentPort: 9990 }), options);

// Out of order on purpose: rendering sorts by address.
const state: RulesetState = {
  plan,
  ports: [port(300), port(0), port(17)],
  policies: [
    pol(300, {}),
    pol(0, { allow_internet: false, ingress: ['10.88.0.19', '10.88.8.0/24'] }),
    pol(17, { egress: ['10.88.0.2', '203.0.113.0/24', 'api.example.com'], outbound_ip: '192.0.2.10' }),
  ],
  dnsGrants: [{ src: '10.88.0.19', dst: '198.51.100.7', name: 'api.example.com', timeoutS: 3600 }],
  options,
};

test('renderRuleset: the full ruleset for the default plan (golden)', () => {
  golden('nft-ruleset.nft', renderRuleset(state));
});

test('renderRuleset: no workspaces renders empty sets (no elements line)', () => {
  const text = renderRuleset({ plan, ports: [], policies: [], options: { ...options, dns: false } });
  assert.doesNotMatch(text, /elements/);
  assert.match(text, /^table inet hearth_hearth0\ndelete table inet hearth_hearth0\ntable inet hearth_hearth0 \{$/m);
  assert.match(text, /^table bridge hearth_hearth0\ndelete table bridge hearth_hearth0\ntable bridge hearth_hearth0 \{$/m);
  assert.match(text, /masquerade/);
});

test('renderRuleset: the host opens DNS on the gateway only when the forwarder runs, before the final drop', () => {
  assert.doesNotMatch(renderRuleset({ ...state, options: { ...options, dns: false } }), /dport 53/);
  const chain = /chain to_host \{([^}]*)\}/.exec(renderRuleset(state))![1]!;
  assert.deepEqual(chain.trim().split('\n').map((l) => l.trim().split(' comment')[0]), [
    'ct state established,related accept',
    'ip daddr 10.88.0.1 udp dport 53 accept',
    'ip daddr 10.88.0.1 tcp dport 53 accept',
    'drop',
  ]);
});

test('renderRuleset: --outbound-ip replaces masquerade; per-workspace outbound IPs come first', () => {
  const text = renderRuleset({ ...state, options: { ...options, outboundIp: '192.0.2.99' } });
  const chain = /chain postrouting \{([^}]*)\}/.exec(text)![1]!.trim().split('\n').map((l) => l.trim().split(' comment')[0]);
  assert.deepEqual(chain.slice(1), [
    'oifname "hearth0" return',
    'ip saddr 10.88.0.0/16 snat ip to ip saddr map @outbound',
    'ip saddr 10.88.0.0/16 snat ip to 192.0.2.99',
  ]);
});

test('renderRuleset: every rule says why (a comment on each rule line)', () => {
  const rules = renderRuleset(state).split('\n').map((l) => l.trim()).filter((l) => /(accept|drop|return|masquerade|snat ip to .*|jump \w+)( |$)/.test(l) && !l.startsWith('type '));
  assert.ok(rules.length >= 30, String(rules.length));
  for (const r of rules) assert.match(r, / comment "[^"]+"$/, r);
});

test('table and subnet naming', () => {
  assert.equal(tableName({ bridge: 'hearth0' }), 'hearth_hearth0');
  assert.equal(tableName({ bridge: 'hb-test.1' }), 'hearth_hb_test_1');
  assert.equal(subnetCidr({ subnet: '10.88.7.9/16' }), '10.88.0.0/16');
});

test('policyElements: a policy maps onto the sets; shapes the fixed rules cannot express are refused', () => {
  assert.deepEqual(pol(17, { egress: ['10.88.0.2', '203.0.113.0/24', 'api.example.com'], ingress: ['10.88.0.2'] }), {
    ip: '10.88.0.19', egressOpen: false, egressInternal: false, egressHosts: ['10.88.0.2'], egressNets: ['203.0.113.0/24'],
    ingressHosts: ['10.88.0.2'], ingressNets: [], outboundIp: null,
  });
  assert.equal(pol(0, {}).egressOpen, true);
  assert.equal(pol(0, { allow_internet: false }).egressInternal, true);
  const p = buildPolicy({ allow_internet: true, ingress: [], egress: [] }, { ip: '10.88.0.2', subnet: plan.subnet, agentPort: 9990 });
  assert.throws(() => policyElements({ ...p, egress: [...p.egress, { verdict: 'deny', peer: { kind: 'any' }, why: 'x' }] }, options), UnrenderablePolicy);
  assert.throws(() => policyElements({ ...p, egress: p.egress.slice(1) }, options), UnrenderablePolicy);
  assert.throws(() => policyElements(p, { agentPort: 1 }), UnrenderablePolicy);
});

test('live updates: ports, policy diffs (tolerant deletes) and DNS grants', () => {
  assert.equal(renderAttachElements(plan, port(17)), 'add element bridge hearth_hearth0 ports { "hth17" . 02:48:0a:58:00:13 . 10.88.0.19 }\n');
  assert.equal(renderDetachElements(plan, port(17)), [
    'add element bridge hearth_hearth0 ports { "hth17" . 02:48:0a:58:00:13 . 10.88.0.19 }',
    'delete element bridge hearth_hearth0 ports { "hth17" . 02:48:0a:58:00:13 . 10.88.0.19 }',
    '',
  ].join('\n'));
  const open = pol(17, {});
  const listed = pol(17, { egress: ['10.88.0.2'], ingress: ['10.88.0.2'], outbound_ip: '192.0.2.10' });
  assert.equal(renderPolicyUpdate(plan, null, open), 'add element inet hearth_hearth0 egress_open { 10.88.0.19 }\n');
  assert.equal(renderPolicyUpdate(plan, open, open), '');
  assert.equal(renderPolicyUpdate(plan, open, listed, [{ src: '10.88.0.19', dst: '198.51.100.7', name: 'old.example.com', timeoutS: 5 }]), [
    'add element inet hearth_hearth0 egress_open { 10.88.0.19 }',
    'delete element inet hearth_hearth0 egress_open { 10.88.0.19 }',
    'add element inet hearth_hearth0 egress_dns { 10.88.0.19 . 198.51.100.7 timeout 1s }',
    'delete element inet hearth_hearth0 egress_dns { 10.88.0.19 . 198.51.100.7 }',
    'add element inet hearth_hearth0 egress_hosts { 10.88.0.19 . 10.88.0.2 }',
    'add element inet hearth_hearth0 ingress_hosts { 10.88.0.19 . 10.88.0.2 }',
    'add element inet hearth_hearth0 outbound { 10.88.0.19 : 192.0.2.10 }',
    '',
  ].join('\n'));
  assert.equal(renderPolicyUpdate(plan, listed, null), [
    'add element inet hearth_hearth0 egress_hosts { 10.88.0.19 . 10.88.0.2 }',
    'delete element inet hearth_hearth0 egress_hosts { 10.88.0.19 . 10.88.0.2 }',
    'add element inet hearth_hearth0 ingress_hosts { 10.88.0.19 . 10.88.0.2 }',
    'delete element inet hearth_hearth0 ingress_hosts { 10.88.0.19 . 10.88.0.2 }',
    'add element inet hearth_hearth0 outbound { 10.88.0.19 : 192.0.2.10 }',
    'delete element inet hearth_hearth0 outbound { 10.88.0.19 : 192.0.2.10 }',
    '',
  ].join('\n'));
  assert.equal(renderDnsGrants(plan, [{ src: '10.88.0.19', dst: '198.51.100.7', name: 'api.example.com', timeoutS: 7200.4 }]), [
    'add element inet hearth_hearth0 egress_dns { 10.88.0.19 . 198.51.100.7 timeout 1s }',
    'delete element inet hearth_hearth0 egress_dns { 10.88.0.19 . 198.51.100.7 }',
    'add element inet hearth_hearth0 egress_dns { 10.88.0.19 . 198.51.100.7 timeout 7200s comment "api.example.com" }',
    '',
  ].join('\n'));
});

test('parseLoaded: nft -j output reads back as the state that was rendered', () => {
  // Shapes as nft 1.0.6 prints them (captured from a live table).
  const inet = JSON.stringify({ nftables: [
    { metainfo: { version: '1.0.6' } },
    { set: { name: 'egress_open', elem: ['10.88.2.46'] } },
    { set: { name: 'egress_internal', elem: ['10.88.0.2'] } },
    { set: { name: 'egress_hosts', elem: [{ concat: ['10.88.0.19', '10.88.0.2'] }] } },
    { set: { name: 'egress_nets', elem: [{ concat: ['10.88.0.19', { prefix: { addr: '203.0.113.0', len: 24 } }] }] } },
    { set: { name: 'egress_dns', elem: [{ elem: { val: { concat: ['10.88.0.19', '198.51.100.7'] }, timeout: 3600, expires: 3100, comment: 'api.example.com' } }] } },
    { set: { name: 'ingress_hosts', elem: [{ concat: ['10.88.0.2', '10.88.0.19'] }] } },
    { set: { name: 'ingress_nets', elem: [{ concat: ['10.88.0.2', { prefix: { addr: '10.88.8.0', len: 24 } }] }] } },
    { map: { name: 'outbound', elem: [['10.88.0.19', '192.0.2.10']] } },
  ] });
  const bridge = JSON.stringify({ nftables: [{ set: { name: 'ports', elem: [{ concat: ['hth0', '02:48:0a:58:00:02', '10.88.0.2'] }] } }] });
  const l = parseLoaded(inet, bridge);
  assert.deepEqual(l.ports, [port(0)]);
  assert.deepEqual(l.dnsGrants, [{ src: '10.88.0.19', dst: '198.51.100.7', name: 'api.example.com', timeoutS: 3100 }]);
  assert.deepEqual(l.policies.map((p) => p.ip), ['10.88.0.2', '10.88.0.19', '10.88.2.46']);
  assert.deepEqual(l.policies[1], { ip: '10.88.0.19', egressOpen: false, egressInternal: false, egressHosts: ['10.88.0.2'], egressNets: ['203.0.113.0/24'], ingressHosts: [], ingressNets: [], outboundIp: '192.0.2.10' });
  assert.deepEqual(l.policies[0]!.ingressNets, ['10.88.8.0/24']);
  assert.deepEqual(parseLoaded('', ''), { ports: [], policies: [], dnsGrants: [] });
});

test('renderRuleset: the operator\'s private ranges are the exceptions of the neighbours\' drop', () => {
  const text = renderRuleset({ ...state, plan: { ...plan, privateAllowed: ['192.168.5.0/24', '10.20.0.0/16'] } });
  assert.match(text, /\tip daddr \{ 10\.0\.0\.0\/8, 100\.64\.0\.0\/10, 172\.16\.0\.0\/12, 192\.168\.0\.0\/16, 198\.18\.0\.0\/15 \} ip daddr != \{ 192\.168\.5\.0\/24, 10\.20\.0\.0\/16 \} drop /);
  const lines = text.split('\n');
  assert.ok(lines.findIndex((l) => l.includes('jump to_workspace')) < lines.findIndex((l) => l.includes("the host's neighbours")), 'workspace traffic leaves before the neighbours\' drop');
  assert.ok(lines.findIndex((l) => l.includes("the host's neighbours")) < lines.findIndex((l) => l.includes('@egress_open accept')), 'and the drop comes before any allow');
});

test('renderRuleset: hearthd published to workspaces — port 80 of the gateway redirected to its listener, open as the internet is', () => {
  assert.doesNotMatch(renderRuleset(state), /redirect to|priority dstnat/, 'closed unless published');
  const text = renderRuleset({ ...state, options: { ...options, hearthPort: 41234 } });
  const gw = '10.88.0.1';
  assert.match(text, new RegExp(`chain prerouting \\{\\n\\t\\ttype nat hook prerouting priority dstnat; policy accept;\\n\\t\\tiifname "hearth0" ip daddr ${gw} tcp dport 80 redirect to :41234 `));
  const chain = /chain to_host \{([^}]*)\}/.exec(text)![1]!;
  const lines = chain.trim().split('\n').map((l) => l.trim());
  const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
  assert.ok(at(/tcp dport 41234 ip saddr @egress_open accept/) >= 0);
  assert.ok(at(/tcp dport 41234 ip saddr \. ip daddr @egress_hosts accept/) >= 0);
  assert.ok(at(/tcp dport 41234 ip saddr \. ip daddr @egress_dns accept/) >= 0);
  assert.ok(lines.every((l) => !/accept/.test(l) || /established|dport (53|41234)/.test(l)), 'nothing else of the host opens');
  assert.ok(at(/tcp dport 41234/) < at(/^drop/), 'before the final drop');
});

test('renderRuleset: QEMU\'s uids are refused every socket in the output hook, only when given', () => {
  assert.doesNotMatch(renderRuleset(state), /skuid/);
  const out = /chain output \{([^}]*)\}/.exec(renderRuleset({ ...state, options: { ...options, vmUids: { first: 1_500_000, last: 1_565_535 } } }))![1]!;
  assert.match(out, /meta skuid 1500000-1565535 reject with icmpx admin-prohibited comment /);
});
