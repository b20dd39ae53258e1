/**
 * The host firewall as text: renderRuleset is pinned against
 * test/golden/nft-ruleset.nft (regenerate deliberately with UPDATE_GOLDEN=1
 * and review the diff), and the set-element updates are pinned inline.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  renderAttachElements, renderDetachElements, renderInternetElements, renderRuleset, subnetCidr, tableName, type RulesetState,
} from '../../src/host/network/nft.ts';
import { DEFAULT_NETWORK_PLAN, slotFor } from '../../src/host/network/slot.ts';

function golden(name: string, actual: string): void {
  const file = new URL(`../golden/${name}`, import.meta.url);
  if (process.env.UPDATE_GOLDEN === '1') {
    writeFileSync(file, actual);
    return;
  }
  assert.equal(actual, readFileSync(file, 'utf8'), `${name} differs from the golden file; if the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff`);
}

const plan = DEFAULT_NETWORK_PLAN;
const ws = (i: number, allowInternet: boolean) => {
  const s = slotFor(plan, i);
  return { hostIf: s.hostIf, ip: s.ip, mac: s.mac, allowInternet };
};

test('renderRuleset: the full ruleset for the default plan (golden)', () => {
  // Out of order on purpose: rendering sorts by address.
  const state: RulesetState = { plan, workspaces: [ws(300, true), ws(0, true), ws(17, false)] };
  golden('nft-ruleset.nft', renderRuleset(state));
});

test('renderRuleset: no workspaces renders empty sets (no elements line)', () => {
  const text = renderRuleset({ plan, workspaces: [] });
  assert.doesNotMatch(text, /elements/);
  assert.match(text, /^table inet hearth_hearth0\ndelete table inet hearth_hearth0\ntable inet hearth_hearth0 \{$/m);
  assert.match(text, /^table bridge hearth_hearth0\ndelete table bridge hearth_hearth0\ntable bridge hearth_hearth0 \{$/m);
});

test('renderRuleset: host services open only what is asked, before the final drop', () => {
  const none = renderRuleset({ plan, workspaces: [] });
  assert.doesNotMatch(none, /dport (53|67)/);
  const dns = renderRuleset({ plan, workspaces: [], hostServices: { dns: true } });
  const chain = /chain from_workspaces \{([^}]*)\}/.exec(dns)![1]!;
  assert.deepEqual(chain.trim().split('\n').map((l) => l.trim().split(' comment')[0]), [
    'ct state established,related accept',
    'udp dport 53 accept',
    'tcp dport 53 accept',
    'drop',
  ]);
});

test('renderRuleset: every rule says why (a comment on each rule line)', () => {
  const text = renderRuleset({ plan, workspaces: [ws(0, false)], hostServices: { dns: true, dhcp: true } });
  const rules = text.split('\n').map((l) => l.trim()).filter((l) => /(accept|drop|return|masquerade|jump \w+)( |$)/.test(l) && !l.startsWith('type '));
  assert.ok(rules.length >= 15);
  for (const r of rules) assert.match(r, / comment "[^"]+"$/, r);
});

test('table and subnet naming', () => {
  assert.equal(tableName({ bridge: 'hearth0' }), 'hearth_hearth0');
  assert.equal(tableName({ bridge: 'hb-test.1' }), 'hearth_hb_test_1');
  assert.equal(subnetCidr({ subnet: '10.88.7.9/16' }), '10.88.0.0/16');
});

test('set-element updates: attach, detach and air-gap toggles are idempotent transactions', () => {
  const a = ws(17, false);
  assert.equal(renderAttachElements(plan, a), [
    'add element inet hearth_hearth0 ws_ips { 10.88.0.19 }',
    'add element inet hearth_hearth0 no_internet { 10.88.0.19 }',
    'add element bridge hearth_hearth0 ports { "hth17" . 02:48:0a:58:00:13 . 10.88.0.19 }',
    '',
  ].join('\n'));
  assert.equal(renderAttachElements(plan, { ...a, allowInternet: true }), [
    'add element inet hearth_hearth0 ws_ips { 10.88.0.19 }',
    'add element inet hearth_hearth0 no_internet { 10.88.0.19 }',
    'delete element inet hearth_hearth0 no_internet { 10.88.0.19 }',
    'add element bridge hearth_hearth0 ports { "hth17" . 02:48:0a:58:00:13 . 10.88.0.19 }',
    '',
  ].join('\n'));
  assert.equal(renderDetachElements(plan, a), [
    'add element bridge hearth_hearth0 ports { "hth17" . 02:48:0a:58:00:13 . 10.88.0.19 }',
    'delete element bridge hearth_hearth0 ports { "hth17" . 02:48:0a:58:00:13 . 10.88.0.19 }',
    'add element inet hearth_hearth0 no_internet { 10.88.0.19 }',
    'delete element inet hearth_hearth0 no_internet { 10.88.0.19 }',
    'add element inet hearth_hearth0 ws_ips { 10.88.0.19 }',
    'delete element inet hearth_hearth0 ws_ips { 10.88.0.19 }',
    '',
  ].join('\n'));
  assert.equal(renderInternetElements(plan, '10.88.0.19', false), 'add element inet hearth_hearth0 no_internet { 10.88.0.19 }\n');
  assert.equal(renderInternetElements(plan, '10.88.0.19', true), 'add element inet hearth_hearth0 no_internet { 10.88.0.19 }\ndelete element inet hearth_hearth0 no_internet { 10.88.0.19 }\n');
});
