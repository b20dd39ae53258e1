/**
 * HostNetwork against the real kernel: bridge, netns, veth, nftables, NAT.
 *
 * Hermetic: as root, this file re-runs itself inside a fresh network
 * namespace (`ip netns add hth-test-<random>` + `nsenter --net`), so the
 * bridge, the nft tables, ip_forward and the fake "internet" host all live
 * there and no packet can reach a real network. (`ip netns exec` is not used:
 * it remounts /sys, which hides /sys/fs/cgroup from runc in the container
 * tests; nsenter --net changes only the network namespace.) After the run
 * the parent asserts the namespaces it made are gone.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import nodeNet from 'node:net';
import { HostNetwork } from '../../src/host/network/host-network.ts';
import { renderRuleset, tableName } from '../../src/host/network/nft.ts';
import { gatewayIp, slotFor, type Slot } from '../../src/host/network/slot.ts';
import { buildPolicy, type PolicyConfig } from '../../src/core/network-policy.ts';

const NS_ENV = 'HEARTH_TEST_NETNS';
const isRoot = process.getuid?.() === 0;

if (isRoot && !process.env[NS_ENV]) {
  const ns = `hth-test-${randomBytes(4).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  let code = 1;
  try {
    const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, process.execPath, ...process.execArgv, fileURLToPath(import.meta.url)], {
      stdio: 'inherit', env: { ...process.env, [NS_ENV]: ns },
    });
    code = r.status ?? 1;
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
  if (existsSync(`/run/netns/${ns}`)) {
    console.error(`leak: /run/netns/${ns} still exists`);
    code = 1;
  }
  process.exit(code);
}

function sh(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}
/** One ICMP echo from inside `ns` (or from the test's own namespace when ns is null). */
function ping(ns: string | null, ip: string): boolean {
  const argv = ['busybox', 'ping', '-c', '1', '-W', '1', ip];
  return ns ? sh('ip', ['netns', 'exec', ns, ...argv]).ok : sh(argv[0]!, argv.slice(1)).ok;
}
function links(): string[] {
  return (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map((l) => l.ifname);
}
function netnsNames(): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns') : [];
}
function nftTables(): string {
  return execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' });
}

const skip = isRoot ? false : 'needs root (CAP_NET_ADMIN): run as root to exercise bridge/veth/nftables';
// A skipped test (not a skipped suite) so runners count it as skipped, with the reason.
if (skip) test('HostNetwork (root, own netns)', { skip }, () => undefined);
else describe('HostNetwork (root, own netns)', () => {
  const rand = randomBytes(2).toString('hex');
  const plan = { bridge: `hb${rand}`, subnet: '10.99.0.0/24', linkPrefix: `hn${rand}` };
  const runDir = mkdtempSync(join(tmpdir(), 'hearth-net-'));
  const net = new HostNetwork(plan, runDir);
  const s0 = slotFor(plan, 0);
  const s1 = slotFor(plan, 1);
  const extNs = `${plan.linkPrefix}ext`;
  const extIf = `${plan.linkPrefix}x`;
  const policy = (s: Slot, c: Partial<PolicyConfig>) => buildPolicy({ allow_internet: true, ingress: [], egress: [], ...c }, { ip: s.ip, subnet: plan.subnet, agentPort: 9990 });

  before(async () => {
    assert.equal(process.env[NS_ENV] !== undefined, true, 'must run inside the test netns');
    await net.ensure();
    await net.ensure(); // idempotent
  });

  after(async () => {
    sh('ip', ['link', 'del', extIf]);
    sh('ip', ['netns', 'del', extNs]);
    await net.teardown();
    rmSync(runDir, { recursive: true, force: true });
    // Leak checks: nothing with our names is left.
    assert.deepEqual(links().filter((l) => l.startsWith(plan.linkPrefix) || l === plan.bridge), []);
    assert.deepEqual(netnsNames().filter((n) => n.startsWith(plan.linkPrefix)), []);
    assert.doesNotMatch(nftTables(), new RegExp(tableName(plan)));
  });

  it('ensure: bridge with the gateway address, forwarding on, ruleset loaded as rendered', async () => {
    const addr = execFileSync('ip', ['-4', '-o', 'addr', 'show', 'dev', plan.bridge], { encoding: 'utf8' });
    assert.match(addr, new RegExp(`inet ${gatewayIp(plan).replace(/\./g, '\\.')}/24`));
    assert.equal((await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim(), '1');
    assert.equal(await readFile(net.rulesetFile, 'utf8'), renderRuleset({ plan, ports: [], policies: [], dnsGrants: [], options: { agentPort: 9990, dns: false, outboundIp: null } }));
    assert.equal((await readFile(`/proc/sys/net/ipv4/conf/${plan.bridge}/proxy_arp_pvlan`, 'utf8')).trim(), '1');
    const listing = execFileSync('nft', ['list', 'table', 'inet', tableName(plan)], { encoding: 'utf8' });
    for (const chain of ['forward', 'from_workspace', 'to_workspace', 'input', 'to_host', 'postrouting']) assert.match(listing, new RegExp(`chain ${chain} `));
    execFileSync('nft', ['list', 'table', 'bridge', tableName(plan)]);
  });

  it('a subnet another interface already routes is refused, naming the clash, and nothing is made', async () => {
    const other = new HostNetwork({ bridge: `hc${rand}`, subnet: '10.99.0.128/25', linkPrefix: `hm${rand}` }, join(runDir, 'other'));
    await assert.rejects(other.ensure(), (e: Error) => /subnet 10\.99\.0\.128\/25 overlaps 10\.99\.0\.0\/24, routed on hb/.test(e.message) && /--subnet/.test(String((e as { hint?: string }).hint)));
    assert.ok(!links().includes(`hc${rand}`), 'no bridge was created');
    assert.doesNotMatch(nftTables(), new RegExp(`hearth_hc${rand}`));
  });

  it('attach: two workspaces in their own namespaces, in the nft sets', async (t) => {
    const t0 = performance.now();
    const a0 = await net.attach(s0);
    const t1 = performance.now();
    await net.attach(s1);
    await net.setPolicy(policy(s0, {}));
    await net.setPolicy(policy(s1, { allow_internet: false }));
    const t2 = performance.now();
    t.diagnostic(`attach ms: ${(t1 - t0).toFixed(1)}, ${(t2 - t1).toFixed(1)}`);
    assert.equal(a0.netnsPath, `/run/netns/${s0.hostIf}`);
    const inside = execFileSync('ip', ['-n', s0.hostIf, '-o', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' });
    assert.match(inside, new RegExp(`inet ${s0.ip.replace(/\./g, '\\.')}/24`));
    assert.match(execFileSync('ip', ['-n', s0.hostIf, 'link', 'show', 'eth0'], { encoding: 'utf8' }), new RegExp(s0.mac));
    const sets = execFileSync('nft', ['list', 'table', 'inet', tableName(plan)], { encoding: 'utf8' });
    assert.match(sets, /set egress_open \{[^}]*elements = \{ 10\.99\.0\.2 \}/);
    assert.match(sets, /set egress_internal \{[^}]*elements = \{ 10\.99\.0\.3 \}/);
    assert.deepEqual(await net.listAttached(), [s0.hostIf, s1.hostIf]);
    const loaded = await net.loaded();
    assert.deepEqual(loaded.ports, [s0, s1].map((s) => ({ hostIf: s.hostIf, ip: s.ip, mac: s.mac })));
    assert.match(execFileSync('bridge', ['-d', 'link', 'show', 'dev', s0.hostIf], { encoding: 'utf8' }), /isolated on/);
  });

  it('host reaches workspaces; workspaces reach neither the host nor each other', () => {
    assert.ok(ping(null, s0.ip), 'host -> ws0');
    assert.ok(ping(null, s1.ip), 'host -> ws1');
    assert.ok(!ping(s0.hostIf, gatewayIp(plan)), 'ws0 -> host must be dropped (input chain)');
    assert.ok(!ping(s0.hostIf, s1.ip), 'ws0 -> ws1 must be dropped (bridge table)');
    assert.ok(!ping(s1.hostIf, s0.ip), 'ws1 -> ws0 must be dropped (bridge table)');
  });

  it('ensure() on a live host keeps attached workspaces', async () => {
    const before = await net.loaded();
    await net.ensure();
    assert.deepEqual(await net.loaded(), before, 'every element carried over');
    assert.ok(ping(null, s0.ip));
  });

  it('egress: NAT to a fake external host; allow_internet:false is air-gapped, live', async () => {
    // The "internet": a namespace on a documentation range behind a non-bridge link.
    execFileSync('ip', ['netns', 'add', extNs]);
    execFileSync('ip', ['link', 'add', extIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', extNs]);
    execFileSync('ip', ['addr', 'add', '198.51.100.1/24', 'dev', extIf]);
    execFileSync('ip', ['link', 'set', extIf, 'up']);
    execFileSync('ip', ['-n', extNs, 'addr', 'add', '198.51.100.2/24', 'dev', 'eth0']);
    execFileSync('ip', ['-n', extNs, 'link', 'set', 'eth0', 'up']);
    // Before sending anything: the route to the fake host is ours.
    assert.match(execFileSync('ip', ['route', 'get', '198.51.100.2'], { encoding: 'utf8' }), new RegExp(`dev ${extIf} `));
    // ext has no route back to 10.99.0.0/24: an answer proves masquerading.
    assert.ok(ping(s0.hostIf, '198.51.100.2'), 'ws0 (allow_internet) -> internet');
    assert.ok(!ping(s1.hostIf, '198.51.100.2'), 'ws1 (air-gapped) -> internet must be dropped');
    await net.setPolicy(policy(s1, {}));
    await net.setPolicy(policy(s1, {}));
    assert.ok(ping(s1.hostIf, '198.51.100.2'), 'ws1 after allow_internet:true');
    await net.setPolicy(policy(s0, { allow_internet: false }));
    assert.ok(!ping(s0.hostIf, '198.51.100.2'), 'ws0 after allow_internet:false');
  });

  it('detach is idempotent and removes netns, veth and set elements', async (t) => {
    const t0 = performance.now();
    await net.detach(s0);
    t.diagnostic(`detach ms: ${(performance.now() - t0).toFixed(1)}`);
    await net.detach(s0);
    assert.ok(!links().includes(s0.hostIf));
    assert.ok(!netnsNames().includes(s0.hostIf));
    await net.removePolicy(s0.ip);
    await net.removePolicy(s0.ip);
    const sets = execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' });
    assert.doesNotMatch(sets, new RegExp(`${s0.ip.replace(/\./g, '\\.')}[,\\s]`));
    assert.deepEqual(await net.listAttached(), [s1.hostIf]);
  });

  it('removing a policy removes its address from every other policy: the slot\'s next holder is trusted by nobody', async () => {
    const [a, b, c] = [slotFor(plan, 10), slotFor(plan, 11), slotFor(plan, 12)];
    await net.setPolicy(policy(a, { ingress: [b.ip], egress: [b.ip, c.ip, 'b.test'] }));
    await net.setPolicy(policy(b, {}));
    await net.setPolicy(policy(c, { ingress: [b.ip] }));
    await net.grantDns(a.ip, 'b.test', [{ ip: b.ip, ttl: 60 }]); // a name that resolved to b's address
    const named = (ip: string) => new RegExp(`(^|[^\\d.])${ip.replace(/\./g, '\\.')}([^\\d.]|$)`, 'm');
    const table = () => execFileSync('nft', ['list', 'table', 'inet', tableName(plan)], { encoding: 'utf8' });
    assert.match(table(), named(b.ip));
    const dnsSet = () => execFileSync('nft', ['list', 'set', 'inet', tableName(plan), 'egress_dns'], { encoding: 'utf8' });
    assert.match(dnsSet(), named(b.ip), 'the DNS grant to b is in');
    await net.removePolicy(b.ip);
    assert.doesNotMatch(dnsSet(), named(b.ip), 'and goes with b');
    assert.doesNotMatch(table(), named(b.ip), 'no element names the removed address');
    assert.match(table(), new RegExp(`${a.ip.replace(/\./g, '\\.')} \\. ${c.ip.replace(/\./g, '\\.')}`), 'the rest of the lists stay');
    assert.equal(net.policyOf(a.ip)!.ingress.some((r) => r.peer.kind === 'address' && r.peer.ip === b.ip), false);
    // A's policy applied again from its (now stripped) stored config changes nothing more.
    await net.setPolicy(policy(a, { egress: [c.ip, 'b.test'] }));
    assert.doesNotMatch(table(), named(b.ip));
    for (const s of [a, c]) await net.removePolicy(s.ip);
  });

  // A range of its own: the suite's other hearthd (every LocalHost refuses VM_UID_BASE and its slots) may share this netns.
  it('QEMU\'s uids open no socket: loopback is refused to them, other uids connect', async () => {
    const vmPlan = { bridge: `hv${rand}`, subnet: '10.98.0.0/24', linkPrefix: `hq${rand}` };
    const vmNet = new HostNetwork(vmPlan, join(runDir, 'vm'), { vmUids: { first: 3_100_000_000, last: 3_100_000_100 } });
    const server = nodeNet.createServer((c) => c.end('hi')).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as nodeNet.AddressInfo).port;
    const connectAs = (uid: number) => sh('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, '-e',
      `require('net').connect(${port}, '127.0.0.1').on('connect', () => { console.log('open'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`]).out.trim();
    try {
      assert.equal(connectAs(3_100_000_050), 'open', 'before the table exists');
      await vmNet.ensure();
      // Rejected, not dropped: a connect fails at once (an ICMP admin-prohibited to the local socket).
      assert.equal(connectAs(3_100_000_050), 'EHOSTUNREACH', 'a VM uid is refused at once');
      assert.equal(connectAs(3_100_000_100), 'EHOSTUNREACH', 'the range is inclusive');
      assert.equal(connectAs(3_100_000_101), 'open', 'other uids are not touched');
      await vmNet.teardown();
      assert.equal(connectAs(3_100_000_050), 'open', 'teardown removes the rule');
    } finally {
      server.close();
      await vmNet.teardown();
    }
  });

  it('a failed attach unwinds everything it acquired', async () => {
    const other = new HostNetwork({ ...plan, bridge: `hx${rand}` }, runDir); // bridge never created
    const s = slotFor(plan, 7);
    await assert.rejects(other.attach(s), (e: Error) => /network attach/.test(e.message));
    assert.ok(!links().includes(s.hostIf));
    assert.ok(!netnsNames().includes(s.hostIf));
  });

  it('attach repairs a leftover from a crash', async () => {
    const s = slotFor(plan, 5);
    execFileSync('ip', ['netns', 'add', s.hostIf]);
    await net.attach(s);
    assert.ok(ping(null, s.ip));
    await net.detach(s);
  });
});
