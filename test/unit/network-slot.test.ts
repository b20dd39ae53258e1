/** Slot math (slot.ts) and the plan checks and derived names of host-network.ts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bridgeMac, checkPlan, NetworkError } from '../../src/host/network/host-network.ts';
import { DEFAULT_NETWORK_PLAN, conflictingRoute, gatewayIp, parseCidr, slotCapacity, slotFor, type NetworkPlan } from '../../src/host/network/slot.ts';

const plan = DEFAULT_NETWORK_PLAN;

test('slots derive name, address, MAC and gateway from the index', () => {
  const cases: [number, string, string, string][] = [
    [0, 'hth0', '10.88.0.2', '02:48:0a:58:00:02'],
    [1, 'hth1', '10.88.0.3', '02:48:0a:58:00:03'],
    [253, 'hth253', '10.88.0.255', '02:48:0a:58:00:ff'],
    [254, 'hth254', '10.88.1.0', '02:48:0a:58:01:00'],
    [65532, 'hth65532', '10.88.255.254', '02:48:0a:58:ff:fe'],
  ];
  for (const [i, hostIf, ip, mac] of cases) {
    assert.deepEqual(slotFor(plan, i), { index: i, hostIf, ip, prefix: 16, gateway: '10.88.0.1', mac }, `slot ${i}`);
  }
});

test('capacity excludes network, gateway and broadcast; out-of-range slots are refused', () => {
  assert.equal(slotCapacity(plan), 65533);
  assert.equal(slotCapacity({ ...plan, subnet: '10.99.0.0/24' }), 253);
  assert.equal(slotFor({ ...plan, subnet: '10.99.0.0/24' }, 252).ip, '10.99.0.254');
  for (const bad of [-1, 1.5, 65533, Number.NaN]) assert.throws(() => slotFor(plan, bad), /slot index/);
});

test('subnets are normalised and validated', () => {
  assert.deepEqual(parseCidr('10.88.3.4/16'), { base: (10 << 24 | 88 << 16) >>> 0, prefix: 16 });
  assert.equal(gatewayIp({ ...plan, subnet: '192.168.7.0/24' }), '192.168.7.1');
  for (const bad of ['10.88.0.0', '10.88.0.0/31', '10.88.0.0/4', '300.1.1.1/16', 'x/16']) assert.throws(() => parseCidr(bad), /invalid/, bad);
});

test('interface names stay within IFNAMSIZ and never collide with the bridge', () => {
  const longest = slotFor({ ...plan, linkPrefix: 'abcdefg' }, slotCapacity(plan) - 1).hostIf;
  assert.ok(longest.length <= 15, longest);
  checkPlan(plan);
  const bad: [Partial<NetworkPlan>, RegExp][] = [
    [{ bridge: 'a-very-long-bridge' }, /bridge name/],
    [{ bridge: 'br 0' }, /bridge name/],
    [{ linkPrefix: 'toolongpfx' }, /link prefix/],
    [{ linkPrefix: '1ab' }, /link prefix/],
    [{ linkPrefix: 'Hth' }, /link prefix/],
    [{ bridge: 'hth0' }, /look like a workspace link/],
  ];
  for (const [over, re] of bad) assert.throws(() => checkPlan({ ...plan, ...over }), (e: unknown) => e instanceof NetworkError && re.test(e.message), JSON.stringify(over));
});

test('the bridge MAC is fixed and distinct from every slot MAC', () => {
  assert.equal(bridgeMac(plan), '02:48:0a:58:00:01');
  assert.notEqual(bridgeMac(plan), slotFor(plan, 0).mac);
});

test('conflictingRoute: overlaps on other devices, in either direction; default and our own bridge are not conflicts', () => {
  const routes = [
    { dst: 'default', dev: 'eth0' },
    { dst: '10.88.0.0/16', dev: 'docker0' },
    { dst: '10.90.1.0/24', dev: 'hb1' },
    { dst: '192.168.1.7', dev: 'wg0' },
  ];
  assert.equal(conflictingRoute('10.77.0.0/24', routes, 'hb1'), null);
  assert.deepEqual(conflictingRoute('10.88.5.0/24', routes, 'hb1'), { dst: '10.88.0.0/16', dev: 'docker0' }, 'inside a wider route');
  assert.deepEqual(conflictingRoute('10.0.0.0/8', routes, 'hb9'), { dst: '10.88.0.0/16', dev: 'docker0' }, 'around a narrower one');
  assert.equal(conflictingRoute('10.90.1.0/24', routes, 'hb1'), null, 'our own bridge');
  assert.deepEqual(conflictingRoute('10.90.1.0/24', routes, 'hb2'), { dst: '10.90.1.0/24', dev: 'hb1' }, 'another instance\'s bridge');
  assert.deepEqual(conflictingRoute('192.168.1.0/24', routes, 'hb1'), { dst: '192.168.1.7', dev: 'wg0' }, 'a host route is a /32');
  assert.equal(conflictingRoute('10.77.0.0/24', [{ dst: 'fe80::/64', dev: 'x' }, { dev: 'y' }], 'hb1'), null, 'junk is skipped');
});
