/**
 * The pure parts of "addresses on the workspace network are names of
 * workspaces" (isolation issue: a reused IP inherited trust): classifying
 * entries, removing a deleted workspace's address from lists, and a slot
 * allocator that refuses a slot whose address a list still names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPolicy, classifyEntry, evaluate, ipToInt, isNamed, pickFreeSlot, policyWithoutPeer, withoutAddress } from '../../src/core/network-policy.ts';
import { configWithout, EGRESS_NOWHERE } from '../../src/control/workspaces/network.ts';
import { elementsWithoutPeer, policyElements } from '../../src/host/network/nft.ts';
import type { WorkspaceConfig } from '../../src/core/workspace-spec.ts';

const range = { first: ipToInt('10.88.0.2'), last: ipToInt('10.88.255.254') };
const ipOf = (i: number) => `10.88.${(i + 2) >> 8}.${(i + 2) & 255}`;

test('entries: an address on the workspace network, a range touching it, or outside', () => {
  assert.equal(classifyEntry('10.88.0.7', range), 'workspace-address');
  assert.equal(classifyEntry('10.88.0.7/32', range), 'workspace-address');
  assert.equal(classifyEntry('10.88.8.0/24', range), 'workspace-range');
  assert.equal(classifyEntry('10.0.0.0/8', range), 'workspace-range', 'a range containing the network');
  assert.equal(classifyEntry('10.88.0.1', range), 'outside', 'the gateway is no workspace');
  assert.equal(classifyEntry('203.0.113.0/24', range), 'outside');
  assert.equal(classifyEntry('api.example.com', range), 'outside');
});

test('withoutAddress removes exactly the address (bare or /32), nothing else; null when nothing changes', () => {
  assert.deepEqual(withoutAddress(['10.88.0.7', '10.88.0.70', '10.88.0.7/32', 'api.example.com', '10.88.0.0/24'], '10.88.0.7'), ['10.88.0.70', 'api.example.com', '10.88.0.0/24']);
  assert.equal(withoutAddress(['10.88.0.8'], '10.88.0.7'), null);
  assert.equal(withoutAddress(undefined, '10.88.0.7'), null);
});

test('a delete never widens egress: a list it empties reaches nothing, and the policy says so', () => {
  const base = { allow_internet: true, ingress: ['10.88.0.7'], egress: ['10.88.0.7'] } as unknown as WorkspaceConfig;
  const next = configWithout(base, '10.88.0.7')!;
  assert.deepEqual([next.ingress, next.egress], [[], [EGRESS_NOWHERE]]);
  assert.equal(configWithout(base, '10.88.0.9'), null);
  const ctx = { ip: '10.88.0.3', subnet: '10.88.0.0/16', agentPort: 9990 };
  const pol = buildPolicy(next, ctx);
  for (const dst of ['10.88.0.7', '10.88.0.9', '198.51.100.1']) assert.equal(evaluate(pol.egress, { ip: dst }, ctx.subnet).verdict, 'deny', `no way out to ${dst}`);
  assert.equal(evaluate(pol.ingress, { ip: '10.88.0.7', tcpPort: 80 }, ctx.subnet).verdict, 'deny', 'the next holder of the address is not trusted');
  // Before the delete: egress open to the named workspace only.
  assert.equal(evaluate(buildPolicy(base, ctx).egress, { ip: '10.88.0.7' }, ctx.subnet).verdict, 'allow');
});

test('the allocator refuses taken slots and slots whose address any list names (bare, /32 or inside a stored range)', () => {
  const none = () => false;
  assert.equal(pickFreeSlot(10, none, ipOf, []), 0);
  assert.equal(pickFreeSlot(10, (i) => i < 2, ipOf, []), 2);
  assert.equal(pickFreeSlot(10, none, ipOf, [['10.88.0.2'], ['api.example.com']]), 1, 'slot 0 (10.88.0.2) is named');
  assert.equal(pickFreeSlot(10, none, ipOf, [['10.88.0.2/32', '10.88.0.3']]), 2);
  assert.equal(pickFreeSlot(10, none, ipOf, [['10.88.0.0/29']]), 6, 'a legacy range inside the network keeps its slots');
  assert.equal(pickFreeSlot(3, none, ipOf, [['10.88.0.2', '10.88.0.3', '10.88.0.4']]), null, 'nothing left');
  assert.equal(isNamed('10.88.0.9', [undefined, 'not a list', ['10.88.0.9']]), true);
  assert.equal(isNamed('10.88.0.9', [['10.88.0.90', 'host.example']]), false);
});

test('the firewall cut: a policy without a removed peer keeps the rest and never reaches more', () => {
  const ctx = { ip: '10.88.0.3', subnet: '10.88.0.0/16', agentPort: 9990 };
  const pol = buildPolicy({ allow_internet: true, ingress: ['10.88.0.7', '203.0.113.7'], egress: ['10.88.0.7', '10.88.0.8'] }, ctx);
  const el = policyElements(pol, { agentPort: 9990 });
  const cut = elementsWithoutPeer(el, '10.88.0.7')!;
  assert.deepEqual([cut.ingressHosts, cut.egressHosts, cut.egressOpen], [['203.0.113.7'], ['10.88.0.8'], false]);
  assert.equal(elementsWithoutPeer(cut, '10.88.0.7'), null, 'nothing left to cut');
  const p2 = policyWithoutPeer(pol, '10.88.0.7');
  assert.equal(evaluate(p2.ingress, { ip: '10.88.0.7', tcpPort: 80 }, ctx.subnet).verdict, 'deny');
  assert.equal(evaluate(p2.egress, { ip: '10.88.0.7' }, ctx.subnet).verdict, 'deny');
  assert.equal(evaluate(p2.egress, { ip: '10.88.0.8' }, ctx.subnet).verdict, 'allow');
  assert.equal(evaluate(p2.egress, { ip: '198.51.100.1' }, ctx.subnet).verdict, 'deny', 'an emptied list does not open egress');
  // Cutting the only egress host leaves an egress that reaches nothing (not "open").
  const only = elementsWithoutPeer(policyElements(buildPolicy({ allow_internet: true, ingress: [], egress: ['10.88.0.7'] }, ctx), { agentPort: 9990 }), '10.88.0.7')!;
  assert.deepEqual([only.egressOpen, only.egressInternal, only.egressHosts], [false, false, []]);
});
