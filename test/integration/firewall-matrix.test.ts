/**
 * The isolation matrix (issue 5), with real containers, real TCP and UDP,
 * inside the test run's own network namespace (bin/test.mjs): three
 * workspaces A, B, C on a real `hearth serve`, and a fake "internet" host
 * on 203.0.113.0/24 in a namespace of its own, reachable only through the
 * host that runs hearthd (its route is checked before anything is sent).
 * DNS: hearthd's forwarder is given a resolver this test runs on loopback.
 *
 * Every "blocked" is a timeout (the packet was dropped), not a refusal, so
 * a missing firewall cannot pass for a closed port.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { Oblien, Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';
import { answerA, parseQuery, reply, RCODE_NXDOMAIN } from '../../src/host/network/dns/wire.ts';

const PROBE = readFileSync(new URL('../helpers/net-probe.py', import.meta.url), 'utf8');
const TCP = 8080, UDP = 8081;
const NET_HOST = '203.0.113.10', NET_OTHER = '203.0.113.11', UPLINK = '203.0.113.1', UPLINK2 = '203.0.113.2';
/** The host's neighbours: a LAN service, and one on a shared (CGNAT) range the operator opens with --egress-allow-private. */
const LAN_HOST = '192.168.77.10', LAN_UPLINK = '192.168.77.1', CGNAT_HOST = '100.64.5.10', CGNAT_UPLINK = '100.64.5.1';
const tag = randomBytes(2).toString('hex');
const inetNs = `fwi${tag}`;
const uplink = `fwu${tag}`;

let h: HearthInstance;
let client: Oblien;
let dnsServer: dgram.Socket;
let hostService: net.Server;
let hostServicePort = 0;
const inetProcs: ChildProcess[] = [];
const ws: Record<'A' | 'B' | 'C', { id: string; ip: string; rt: Runtime }> = {} as never;

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });

/** The fake internet: a namespace behind a veth of the hearthd namespace, no default route (answers need NAT). */
function makeInternet(): void {
  sh('ip', ['netns', 'add', inetNs]);
  sh('ip', ['link', 'add', uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', inetNs]);
  sh('ip', ['addr', 'add', `${UPLINK}/24`, 'dev', uplink]);
  sh('ip', ['addr', 'add', `${UPLINK2}/24`, 'dev', uplink]);
  sh('ip', ['addr', 'add', `${LAN_UPLINK}/24`, 'dev', uplink]);
  sh('ip', ['addr', 'add', `${CGNAT_UPLINK}/24`, 'dev', uplink]);
  sh('ip', ['link', 'set', uplink, 'up']);
  for (const a of [NET_HOST, NET_OTHER, LAN_HOST, CGNAT_HOST]) sh('ip', ['-n', inetNs, 'addr', 'add', `${a}/24`, 'dev', 'eth0']);
  sh('ip', ['-n', inetNs, 'link', 'set', 'eth0', 'up']);
  sh('ip', ['-n', inetNs, 'link', 'set', 'lo', 'up']);
  // Before sending anything: the route to the fake host is ours.
  for (const a of [NET_HOST, LAN_HOST, CGNAT_HOST]) assert.match(sh('ip', ['route', 'get', a]), new RegExp(`dev ${uplink} `));
  const server = `
    const net = require('net'), dgram = require('dgram');
    for (const host of ['${NET_HOST}', '${NET_OTHER}', '${LAN_HOST}', '${CGNAT_HOST}']) {
      net.createServer((s) => s.end(s.remoteAddress.replace('::ffff:', '') + '\\n')).listen(${TCP}, host);
      const u = dgram.createSocket('udp4'); u.on('message', (m, r) => u.send(r.address, r.port, r.address)); u.bind(${UDP}, host);
    }`;
  inetProcs.push(spawn('nsenter', [`--net=/run/netns/${inetNs}`, process.execPath, '-e', server], { stdio: 'ignore' }));
}

/** The resolver hearthd's forwarder asks: internet.test and other.test, NXDOMAIN for the rest. */
async function startResolver(): Promise<number> {
  dnsServer = dgram.createSocket('udp4');
  dnsServer.on('message', (msg, r) => {
    const q = parseQuery(msg);
    if (!q) return;
    const ip = ({ 'internet.test': NET_HOST, 'other.test': NET_OTHER, 'lan.test': LAN_HOST } as Record<string, string>)[q.name];
    dnsServer.send(ip ? answerA(msg, q, [ip], 60) : reply(msg, q, RCODE_NXDOMAIN), r.port, r.address);
  });
  await new Promise<void>((res) => dnsServer.bind(0, '127.0.0.1', () => res()));
  return dnsServer.address().port;
}

async function exec(w: keyof typeof ws, argv: string[]): Promise<string> {
  const r = await ws[w].rt.exec.run(argv, { timeoutSeconds: 30 } as never);
  assert.equal(r.exit_code, 0, `${w}: ${argv.join(' ')}: ${r.stderr}`);
  return r.stdout ?? '';
}

type Check = ['tcp', string, number] | ['udp', string, number, string] | ['dns', string];
async function probe(w: keyof typeof ws, checks: Check[]): Promise<string[]> {
  return JSON.parse(await exec(w, ['python3', '/tmp/probe.py', 'multi', JSON.stringify(checks)])) as string[];
}

/** TCP and UDP from `from` to `ip`: both must agree with `open` (ok with our address, or dropped). */
async function reach(from: keyof typeof ws, ip: string, open: boolean, why: string): Promise<void> {
  const [t, u] = await probe(from, [['tcp', ip, TCP], ['udp', ip, UDP, `tok-${from}`]]);
  if (open) {
    assert.match(t!, /^ok:/, `${why}: TCP ${from} -> ${ip}`);
    assert.match(u!, /^ok:/, `${why}: UDP ${from} -> ${ip}`);
  } else {
    assert.equal(t, 'timeout', `${why}: TCP ${from} -> ${ip} must be dropped`);
    assert.equal(u, 'timeout', `${why}: UDP ${from} -> ${ip} must be dropped`);
  }
}

async function setNet(w: keyof typeof ws, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  return await client.workspaces.network.update(ws[w].id, body as never) as Record<string, unknown>;
}

function nftTable(family: 'inet' | 'bridge'): string {
  return sh('nft', ['list', 'table', family, `hearth_${h.bridge}`]);
}

before(async () => {
  if (needsRoot) return;
  makeInternet();
  const dnsPort = await startResolver();
  hostService = net.createServer((s) => s.end('host service\n'));
  await new Promise<void>((res) => hostService.listen(0, '0.0.0.0', () => res()));
  hostServicePort = (hostService.address() as net.AddressInfo).port;
  h = await startHearth({ extraArgs: ['--warm-pool', '0', '--dns-upstream', `127.0.0.1:${dnsPort}`, '--egress-allow-private', '100.64.5.0/24'] });
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  const made = await Promise.all((['A', 'B', 'C'] as const).map((name) => client.workspaces.create({ name: `fw-${name.toLowerCase()}-${tag}`, image: 'python-3.11', config: {} } as never)));
  for (const [i, name] of (['A', 'B', 'C'] as const).entries()) {
    const w = made[i] as unknown as { id: string; info: { internal_ip: string } };
    await client.workspaces.waitUntilReady(w.id);
    const { token } = await client.workspaces.apiAccess.enable(w.id) as { token: string };
    ws[name] = { id: w.id, ip: w.info.internal_ip, rt: new Runtime({ token, baseUrl: h.runtime }) };
    await ws[name].rt.files.write({ fullPath: '/tmp/probe.py', content: PROBE });
    await exec(name, ['python3', '/tmp/probe.py', 'serve', String(TCP), String(UDP), '/tmp/udp.log']);
  }
  // The fake internet answers before any assertion relies on it.
  await waitUntil('the fake internet host to listen', async () => (await probe('A', [['tcp', NET_HOST, TCP]]))[0]!.startsWith('ok:'), 15_000, 200);
});

after(async () => {
  try {
    if (h) await h.stop();
  } finally {
    for (const p of inetProcs) p.kill('SIGKILL');
    dnsServer?.close();
    hostService?.close();
    try { sh('ip', ['link', 'del', uplink]); } catch { /* gone with the namespace */ }
    try { sh('ip', ['netns', 'del', inetNs]); } catch { /* not made */ }
  }
});

const skip = needsRoot;

test('default: workspaces are invisible to each other; egress reaches the (fake) internet, masqueraded', { skip }, async () => {
  await reach('A', ws.B.ip, false, 'default deny');
  await reach('B', ws.A.ip, false, 'default deny');
  await reach('C', ws.B.ip, false, 'default deny');
  const [t] = await probe('A', [['tcp', NET_HOST, TCP]]);
  assert.equal(t, `ok:${UPLINK}`, 'the internet sees the host\'s uplink address, not the workspace');
  await reach('B', NET_HOST, true, 'open egress');
});

test('the host\'s neighbours: a LAN address is dropped open, listed or resolved; the operator\'s range is reachable', { skip }, async () => {
  // The LAN host answers the host itself: only the firewall stands between it and a workspace.
  assert.equal(await new Promise((res) => net.connect(TCP, LAN_HOST).on('data', (d) => res(String(d).trim())).on('error', (e) => res(e.message))), LAN_UPLINK);
  await reach('A', LAN_HOST, false, 'open egress is not the LAN');
  await reach('A', CGNAT_HOST, true, '--egress-allow-private 100.64.5.0/24');
  await setNet('A', { egress: [LAN_HOST, 'lan.test'] });
  await reach('A', LAN_HOST, false, 'a tenant cannot list its way onto the LAN');
  assert.equal((await probe('A', [['dns', 'lan.test']]))[0], `ok:${LAN_HOST}`, 'the name resolves (and is granted) ...');
  await reach('A', LAN_HOST, false, '... but a LAN answer opens nothing');
  await reach('A', CGNAT_HOST, false, 'the operator\'s range still obeys the workspace\'s own list');
  await setNet('A', { egress: [] });
  await reach('A', CGNAT_HOST, true, 'open again');
});

test('B\'s ingress names A: A reaches B at once (no restart), C does not, nobody reaches B\'s agent', { skip }, async () => {
  const view = await setNet('B', { ingress: [ws.A.ip] });
  assert.deepEqual(view.ingress, [ws.A.ip]);
  const [t, u] = await probe('A', [['tcp', ws.B.ip, TCP], ['udp', ws.B.ip, UDP, 'hello']]);
  assert.equal(t, `ok:${ws.A.ip}`, 'B sees A\'s real address (no NAT between workspaces)');
  assert.equal(u, `ok:${ws.A.ip}`);
  await reach('C', ws.B.ip, false, 'C is not on B\'s ingress');
  await reach('B', ws.A.ip, false, 'ingress is one-way');
  assert.deepEqual(await probe('A', [['tcp', ws.B.ip, 9990]]), ['timeout'], 'the agent answers the host only');
});

test('egress of A limited to B: B yes; C (whose ingress names A) and the internet no; the list is lifted live', { skip }, async () => {
  await setNet('C', { ingress: [ws.A.ip] });
  await reach('A', ws.C.ip, true, 'C accepts A');
  await setNet('A', { egress: [ws.B.ip] });
  await reach('A', ws.B.ip, true, 'egress names B');
  await reach('A', ws.C.ip, false, 'egress does not name C');
  await reach('A', NET_HOST, false, 'egress does not name the internet');
  assert.match((await probe('A', [['dns', 'internet.test']]))[0]!, /^err:/, 'no name resolves for an allow-listed workspace unless listed');
  await setNet('A', { egress: [] });
  await reach('A', NET_HOST, true, 'egress open again');
  await setNet('C', { ingress: [] });
});

test('allow_internet:false: no route out (TCP, UDP, DNS), private networking still per ingress; live both ways', { skip }, async () => {
  assert.match((await probe('C', [['dns', 'internet.test']]))[0]!, new RegExp(`^ok:${NET_HOST.replace(/\./g, '\\.')}$`), 'open egress resolves through Hearth\'s DNS');
  await setNet('C', { allow_internet: false });
  await reach('C', NET_HOST, false, 'air-gapped');
  assert.match((await probe('C', [['dns', 'internet.test']]))[0]!, /^err:/, 'air-gapped: DNS is no way out either');
  await setNet('B', { ingress: [ws.A.ip, ws.C.ip] });
  await reach('C', ws.B.ip, true, 'air-gapped, but B accepts C');
  await setNet('C', { allow_internet: true });
  await reach('C', NET_HOST, true, 'internet back');
});

test('hostname egress: only what Hearth\'s DNS answered for a listed name is reachable', { skip }, async () => {
  await setNet('A', { egress: ['internet.test'], allow_internet: false });
  await reach('A', NET_HOST, false, 'not resolved yet: nothing granted');
  const [resolved, other] = await probe('A', [['dns', 'internet.test'], ['dns', 'other.test']]);
  assert.equal(resolved, `ok:${NET_HOST}`);
  assert.match(other!, /^err:/, 'an unlisted name does not resolve');
  await reach('A', NET_HOST, true, 'granted by the DNS answer');
  await reach('A', NET_OTHER, false, 'same network, never resolved for A');
  assert.match(nftTable('inet'), new RegExp(`${ws.A.ip.replace(/\./g, '\\.')} \\. ${NET_HOST.replace(/\./g, '\\.')} timeout \\S+ expires \\S+ comment "internet.test"`));
  await setNet('A', { egress: [ws.B.ip] });
  await reach('A', NET_HOST, false, 'hostname removed: its grants are revoked at once');
  assert.doesNotMatch(nftTable('inet'), /comment "internet.test"/);
  await setNet('A', { egress: [], allow_internet: true });
});

test('anti-spoofing: a forged source address or MAC from A never reaches B', { skip }, async () => {
  // B accepts A and C, so only anti-spoofing can stop a packet claiming to be C.
  await setNet('B', { ingress: [ws.A.ip, ws.C.ip] });
  await probe('A', [['udp', ws.B.ip, UDP, 'legit-a']]);
  await exec('A', ['python3', '/tmp/probe.py', 'spoofip', ws.C.ip, ws.B.ip, String(UDP), 'forged-ip']);
  const gwMac = ['02', '48', ...h.subnet.split('/')[0]!.split('.').map((p, i) => (i === 3 ? 1 : Number(p)).toString(16).padStart(2, '0'))].join(':');
  await exec('A', ['python3', '/tmp/probe.py', 'spoofmac', '02:48:de:ad:be:ef', gwMac, ws.A.ip, ws.B.ip, String(UDP), 'forged-mac']);
  await new Promise((r) => setTimeout(r, 500));
  const log = await exec('B', ['cat', '/tmp/udp.log']);
  assert.match(log, new RegExp(`legit-a ${ws.A.ip.replace(/\./g, '\\.')}`), 'the genuine datagram arrived (the check can see arrivals)');
  assert.doesNotMatch(log, /forged-ip/, 'forged source address dropped');
  assert.doesNotMatch(log, /forged-mac/, 'forged source MAC dropped');
});

test('host protection: no workspace reaches hearthd\'s listeners or any other host service', { skip }, async () => {
  const gw = ws.A.ip.replace(/\.\d+$/, '.1');
  const ports = [new URL(h.api).port, new URL(h.runtime).port, String(hostServicePort), '22'].map(Number);
  // The host service listens on every address: without the firewall it would answer.
  assert.equal(await new Promise((res) => net.connect(hostServicePort, UPLINK).on('data', (d) => res(String(d))).on('error', (e) => res(e.message))), 'host service\n');
  for (const w of ['A', 'C'] as const) {
    const checks: Check[] = ports.flatMap((p) => [['tcp', gw, p], ['tcp', UPLINK, p]] as Check[]);
    assert.deepEqual(await probe(w, checks), checks.map(() => 'timeout'), `${w} -> host ports ${ports.join(', ')}`);
    assert.deepEqual(await probe(w, [['udp', gw, 9, 'x']]), ['timeout']);
  }
});

test('outbound IP: POST /network/ip SNATs the workspace to a host address; GET reports it; others refused', { skip }, async () => {
  const set = await client.workspaces.network.applyOutboundIp(ws.B.id, { ip: UPLINK2 } as never) as Record<string, unknown>;
  assert.equal(set.outbound_ip, UPLINK2);
  assert.equal(((await client.workspaces.network.get(ws.B.id)) as Record<string, unknown>).outbound_ip, UPLINK2);
  assert.deepEqual(await probe('B', [['tcp', NET_HOST, TCP]]), [`ok:${UPLINK2}`]);
  assert.deepEqual(await probe('A', [['tcp', NET_HOST, TCP]]), [`ok:${UPLINK}`], 'other workspaces keep the default');
  await assert.rejects(client.workspaces.network.applyOutboundIp(ws.B.id, { ip: '198.51.100.77' } as never), /not an address of this host/);
  assert.equal(((await client.workspaces.network.get(ws.A.id)) as Record<string, unknown>).outbound_ip, null);
});

test('hearthd restart: the table is rebuilt from the store, no duplicates, and the matrix still holds', { skip }, async () => {
  await setNet('A', { egress: ['internet.test', ws.B.ip] });
  await probe('A', [['dns', 'internet.test']]);
  const before = { inet: nftTable('inet'), bridge: nftTable('bridge') };
  await h.crashAndRestart();
  await waitUntil('hearthd to be back', async () => (await client.workspaces.get(ws.A.id)) as unknown, 30_000, 200);
  const afterT = { inet: nftTable('inet'), bridge: nftTable('bridge') };
  const elements = (t: string) => [...t.matchAll(/elements = \{([^}]*)\}/g)].map((m) => m[1]!.replace(/expires \S+/g, '').replace(/timeout \S+/g, '').replace(/\s+/g, ' ').trim());
  assert.deepEqual(elements(afterT.inet), elements(before.inet), 'the same policy elements (DNS grants carried over)');
  assert.deepEqual(elements(afterT.bridge), elements(before.bridge), 'the same ports');
  await reach('A', ws.B.ip, true, 'after restart: B accepts A');
  await reach('A', NET_HOST, true, 'after restart: the DNS grant survived');
  await reach('A', NET_OTHER, false, 'after restart: egress list');
  await reach('C', ws.A.ip, false, 'after restart: default deny');
  assert.deepEqual(await probe('C', [['tcp', ws.B.ip.replace(/\.\d+$/, '.1'), Number(new URL(h.api).port)]]), ['timeout']);
  await setNet('A', { egress: [] });
});

test('deletion: nothing of a deleted workspace stays in the tables', { skip }, async () => {
  await setNet('B', { ingress: [ws.A.ip] });
  const ip = ws.C.ip.replace(/\./g, '\\.');
  assert.match(nftTable('inet') + nftTable('bridge'), new RegExp(`${ip}\\b`));
  await client.workspaces.delete(ws.C.id);
  const left = nftTable('inet') + nftTable('bridge');
  assert.doesNotMatch(left, new RegExp(`${ip}\\b`), 'no element for C');
  await client.workspaces.delete(ws.B.id);
  await client.workspaces.delete(ws.A.id);
  assert.doesNotMatch(nftTable('inet') + nftTable('bridge'), /elements = /, 'no element at all once every workspace is gone');
});
