/**
 * The DNS forwarder's wire format and decisions, against a resolver of the
 * test's own on loopback (no real DNS server is ever asked).
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, test } from 'node:test';
import { answerA, buildQuery, parseAnswer, parseQuery, readName, reply, RCODE_NXDOMAIN, TYPE_AAAA } from '../../src/host/network/dns/wire.ts';
import { DnsForwarder, parseUpstream, upstreamsFromResolvConf } from '../../src/host/network/dns/forwarder.ts';
import { buildPolicy } from '../../src/core/network-policy.ts';

test('wire: a query round-trips; answers give their A records; our replies copy the question', () => {
  const q = buildQuery(0x1234, 'Api.Example.com.');
  const pq = parseQuery(q)!;
  assert.deepEqual({ id: pq.id, name: pq.name, type: pq.type, rd: pq.rd }, { id: 0x1234, name: 'api.example.com', type: 1, rd: true });
  const ans = answerA(q, pq, ['198.51.100.7', '198.51.100.8'], 120);
  assert.deepEqual(parseAnswer(ans), { id: 0x1234, rcode: 0, truncated: false, a: [{ ip: '198.51.100.7', ttl: 120 }, { ip: '198.51.100.8', ttl: 120 }] });
  const nx = reply(q, pq, RCODE_NXDOMAIN);
  assert.equal(parseAnswer(nx).rcode, 3);
  assert.equal(parseQuery(nx), null, 'a response is not a query');
  assert.equal(parseQuery(Buffer.from([1, 2, 3])), null);
});

test('wire: compression loops and bad labels are rejected, not followed', () => {
  const loop = Buffer.from([0xc0, 0x00]);
  assert.throws(() => readName(loop, 0), /loop/);
  assert.throws(() => readName(Buffer.from([5, 97]), 0), /bad label/);
});

test('upstreams: parsed from flags and resolv.conf', () => {
  assert.deepEqual(parseUpstream('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353 });
  assert.deepEqual(parseUpstream('10.0.0.2'), { host: '10.0.0.2', port: 53 });
  assert.throws(() => parseUpstream('dns.example'));
  assert.deepEqual(upstreamsFromResolvConf('# x\nnameserver 127.0.0.53\nnameserver ::1\nsearch lan\n'), [{ host: '127.0.0.53', port: 53 }]);
});

let upstream: dgram.Socket;
let upstreamPort = 0;
let upstreamAsked: string[] = [];

before(async () => {
  upstream = dgram.createSocket('udp4');
  upstream.on('message', (msg, r) => {
    const q = parseQuery(msg)!;
    upstreamAsked.push(q.name);
    upstream.send(answerA(msg, q, q.name === 'api.example.com' ? ['198.51.100.7'] : ['198.51.100.99'], 30), r.port, r.address);
  });
  await new Promise<void>((res) => upstream.bind(0, '127.0.0.1', () => res()));
  upstreamPort = upstream.address().port;
});
after(() => upstream.close());

test('forwarder: learns allowed names before answering, refuses the rest without asking, passes open egress', async () => {
  const ctx = { subnet: '10.88.0.0/16', agentPort: 9990 };
  const policies = new Map([
    ['10.88.0.2', buildPolicy({ allow_internet: false, ingress: [], egress: ['api.example.com'] }, { ...ctx, ip: '10.88.0.2' })],
    ['10.88.0.3', buildPolicy({ allow_internet: true, ingress: [], egress: [] }, { ...ctx, ip: '10.88.0.3' })],
  ]);
  const grants: string[] = [];
  const fwd = new DnsForwarder({
    listen: '127.0.0.1', port: 0, upstreams: [{ host: '127.0.0.1', port: upstreamPort }], policyOf: (ip) => policies.get(ip),
    grant: async (src, name, a) => { grants.push(`${src} ${name} ${a.map((x) => `${x.ip}/${x.ttl}`).join(',')}`); },
  });
  upstreamAsked = [];
  const ask = (src: string, name: string, type = 1) => fwd.handle(buildQuery(7, name, type), src, 'udp').then((b) => parseAnswer(b!));

  assert.deepEqual((await ask('10.88.0.2', 'api.example.com')).a, [{ ip: '198.51.100.7', ttl: 30 }]);
  assert.deepEqual(grants, ['10.88.0.2 api.example.com 198.51.100.7/30']);
  assert.equal((await ask('10.88.0.2', 'evil.example.com')).rcode, RCODE_NXDOMAIN);
  assert.deepEqual((await ask('10.88.0.2', 'api.example.com', TYPE_AAAA)), { id: 7, rcode: 0, truncated: false, a: [] });
  assert.deepEqual((await ask('10.88.0.3', 'anything.example')).a, [{ ip: '198.51.100.99', ttl: 30 }]);
  assert.equal((await ask('10.99.9.9', 'api.example.com')).rcode, RCODE_NXDOMAIN, 'not a workspace');
  assert.deepEqual(upstreamAsked, ['api.example.com', 'anything.example'], 'refused names never leave the host');
  assert.equal(grants.length, 1, 'open egress needs no grants');

  // A grant that cannot be made means no answer: never hand out an address the firewall does not allow.
  const failing = new DnsForwarder({
    listen: '127.0.0.1', upstreams: [{ host: '127.0.0.1', port: upstreamPort }], policyOf: (ip) => policies.get(ip),
    grant: async () => { throw new Error('nft down'); },
  });
  assert.equal((parseAnswer((await failing.handle(buildQuery(8, 'api.example.com'), '10.88.0.2', 'udp'))!)).rcode, 2);
});

test('forwarder: serves UDP and TCP on its address', async () => {
  const fwd = new DnsForwarder({
    listen: '127.0.0.1', port: 0, upstreams: [{ host: '127.0.0.1', port: upstreamPort }],
    policyOf: () => buildPolicy({ allow_internet: true, ingress: [], egress: [] }, { ip: '127.0.0.1', subnet: '127.0.0.0/8', agentPort: 9990 }),
    grant: async () => undefined,
  });
  // Port 0: find what we got from the sockets (tests only).
  await fwd.start();
  const sockets = fwd as unknown as { udp: dgram.Socket; tcp: import('node:net').Server };
  const uport = sockets.udp.address().port;
  const c = dgram.createSocket('udp4');
  const got = await new Promise<Buffer>((res) => { c.once('message', res); c.send(buildQuery(9, 'x.example'), uport, '127.0.0.1'); });
  c.close();
  assert.deepEqual(parseAnswer(got).a, [{ ip: '198.51.100.99', ttl: 30 }]);
  const net = await import('node:net');
  const tport = (sockets.tcp.address() as import('node:net').AddressInfo).port;
  const tcpAnswer = await new Promise<Buffer>((res, rej) => {
    const s = net.connect(tport, '127.0.0.1', () => { const q = buildQuery(10, 'y.example'); s.write(Buffer.concat([Buffer.from([0, q.length]), q])); });
    let buf = Buffer.alloc(0);
    s.on('data', (d) => { buf = Buffer.concat([buf, d]); if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) { s.destroy(); res(buf.subarray(2)); } });
    s.on('error', rej);
  });
  assert.deepEqual(parseAnswer(tcpAnswer), { id: 10, rcode: 0, truncated: false, a: [{ ip: '198.51.100.99', ttl: 30 }] });
  await fwd.close();
});

/** A resolver of the test's own on loopback whose behaviour each test chooses. */
async function testResolver(onQuery: (msg: Buffer, r: dgram.RemoteInfo, s: dgram.Socket) => void): Promise<{ port: number; close(): void }> {
  const s = dgram.createSocket('udp4');
  s.on('message', (msg, r) => onQuery(msg, r, s));
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()));
  return { port: s.address().port, close: () => s.close() };
}
const openPolicy = () => buildPolicy({ allow_internet: true, ingress: [], egress: [] }, { ip: '10.88.0.3', subnet: '10.88.0.0/16', agentPort: 9990 });

test('forwarder: upstream queries carry ids of its own choosing; the client gets its id back', async () => {
  const seen: number[] = [];
  const res = await testResolver((msg, r, s) => { seen.push(msg.readUInt16BE(0)); s.send(answerA(msg, parseQuery(msg)!, ['198.51.100.1'], 30), r.port, r.address); });
  const fwd = new DnsForwarder({ listen: '127.0.0.1', upstreams: [{ host: '127.0.0.1', port: res.port }], policyOf: openPolicy, grant: async () => undefined });
  for (let i = 0; i < 16; i++) {
    const a = parseAnswer((await fwd.handle(buildQuery(7, `n${i}.example`), '10.88.0.3', 'udp'))!);
    assert.equal(a.id, 7, 'the answer carries the id the client chose');
    assert.deepEqual(a.a, [{ ip: '198.51.100.1', ttl: 30 }]);
  }
  // A workspace that picks the id upstream must not know it: 16 random ids are not all its own.
  assert.ok(seen.some((id) => id !== 7), `upstream saw only the client's id: ${seen.join(',')}`);
  await fwd.close();
  res.close();
});

test('forwarder: an answer to another question, with the right id and source, is not relayed', async () => {
  // The resolver first answers a question that was not asked (what a spoofer racing the real answer sends), then the real one.
  const res = await testResolver((msg, r, s) => {
    const q = parseQuery(msg)!;
    const forged = answerA(buildQuery(msg.readUInt16BE(0), 'other.example'), parseQuery(buildQuery(msg.readUInt16BE(0), 'other.example'))!, ['203.0.113.66'], 30);
    s.send(forged, r.port, r.address);
    setTimeout(() => s.send(answerA(msg, q, ['198.51.100.7'], 30), r.port, r.address), 30);
  });
  const ctx = { subnet: '10.88.0.0/16', agentPort: 9990, ip: '10.88.0.2' };
  const grants: string[] = [];
  const fwd = new DnsForwarder({
    listen: '127.0.0.1', upstreams: [{ host: '127.0.0.1', port: res.port }],
    policyOf: () => buildPolicy({ allow_internet: false, ingress: [], egress: ['api.example.com'] }, ctx),
    grant: async (_src, _name, a) => { grants.push(...a.map((x) => x.ip)); },
  });
  const a = parseAnswer((await fwd.handle(buildQuery(9, 'api.example.com'), '10.88.0.2', 'udp'))!);
  assert.deepEqual(a.a, [{ ip: '198.51.100.7', ttl: 30 }]);
  assert.deepEqual(grants, ['198.51.100.7'], 'the forged address was never granted');
  assert.equal(fwd.upstreamStats.mismatched, 1);
  await fwd.close();
  res.close();
});

test('forwarder: a flood of queries shares a few upstream sockets and is capped in flight', async () => {
  const ports = new Set<number>();
  const res = await testResolver((msg, r, s) => { ports.add(r.port); setTimeout(() => s.send(answerA(msg, parseQuery(msg)!, ['198.51.100.2'], 30), r.port, r.address), 50); });
  const fwd = new DnsForwarder({
    listen: '127.0.0.1', upstreams: [{ host: '127.0.0.1', port: res.port }], policyOf: openPolicy, grant: async () => undefined,
    queryBurst: 1000, pool: { sockets: 4, maxInFlight: 64 },
  });
  const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => fwd.handle(buildQuery(i, `f${i}.example`), '10.88.0.3', 'udp').then((b) => parseAnswer(b!))));
  assert.ok(ports.size <= 4, `${ports.size} upstream source ports for 100 queries`);
  assert.equal(answers.filter((a) => a.rcode === 0).length, 64, 'queries beyond the in-flight cap are answered SERVFAIL, not queued');
  assert.equal(answers.filter((a) => a.rcode === 2).length, 36);
  assert.equal(fwd.upstreamStats.overloaded, 36);
  await fwd.close();
  res.close();
});

test('forwarder: each workspace has a query budget; spending it does not starve another', async () => {
  let asked = 0;
  const res = await testResolver((msg, r, s) => { asked++; s.send(answerA(msg, parseQuery(msg)!, ['198.51.100.3'], 30), r.port, r.address); });
  const fwd = new DnsForwarder({
    listen: '127.0.0.1', upstreams: [{ host: '127.0.0.1', port: res.port }], policyOf: openPolicy, grant: async () => undefined,
    queryBurst: 20, queriesPerSecond: 1,
  });
  const rcodes: number[] = [];
  for (let i = 0; i < 30; i++) rcodes.push(parseAnswer((await fwd.handle(buildQuery(i, `b${i}.example`), '10.88.0.3', 'udp'))!).rcode);
  assert.equal(rcodes.filter((r) => r === 0).length, 20);
  assert.equal(rcodes.filter((r) => r === 5).length, 10, 'REFUSED once the budget is spent');
  assert.equal(asked, 20, 'refused queries never reach the upstream');
  assert.equal(parseAnswer((await fwd.handle(buildQuery(1, 'other.example'), '10.88.0.4', 'udp'))!).rcode, 0, 'another workspace still resolves');
  await fwd.close();
  res.close();
});

test('forwarder: TCP connections are capped per workspace address', async () => {
  const fwd = new DnsForwarder({ listen: '127.0.0.1', port: 0, upstreams: [], policyOf: openPolicy, grant: async () => undefined, tcpPerSource: 2 });
  await fwd.start();
  const net = await import('node:net');
  const tport = ((fwd as unknown as { tcp: import('node:net').Server }).tcp.address() as import('node:net').AddressInfo).port;
  const open = () => new Promise<import('node:net').Socket>((res, rej) => { const s = net.connect(tport, '127.0.0.1', () => res(s)); s.on('error', rej); });
  const held = [await open(), await open()];
  const third = await open();
  const closed = await new Promise<boolean>((res) => { third.on('close', () => res(true)); setTimeout(() => res(false), 1000); });
  assert.ok(closed, 'the third connection from one address is closed at once');
  assert.equal(fwd.stats.limited, 1);
  for (const s of held) s.destroy();
  await fwd.close();
});

test('forwarder: Hearth\'s own names are answered here under the same verdict, never asked upstream', async () => {
  const ctx = { subnet: '10.88.0.0/16', agentPort: 9990 };
  const policies = new Map([
    ['10.88.0.2', buildPolicy({ allow_internet: false, ingress: [], egress: ['api.hearth.internal'] }, { ...ctx, ip: '10.88.0.2' })],
    ['10.88.0.3', buildPolicy({ allow_internet: true, ingress: [], egress: [] }, { ...ctx, ip: '10.88.0.3' })],
    ['10.88.0.4', buildPolicy({ allow_internet: false, ingress: [], egress: [] }, { ...ctx, ip: '10.88.0.4' })],
  ]);
  const grants: string[] = [];
  const fwd = new DnsForwarder({
    listen: '127.0.0.1', port: 0, upstreams: [{ host: '127.0.0.1', port: upstreamPort }], policyOf: (ip) => policies.get(ip),
    grant: async (src, name, a) => { grants.push(`${src} ${name} ${a.map((x) => x.ip).join(',')}`); },
    localNames: () => new Map([['api.hearth.internal', '10.88.0.1'], ['runtime.hearth.internal', '10.88.0.1']]),
  });
  upstreamAsked = [];
  const ask = (src: string, name: string, type = 1) => fwd.handle(buildQuery(9, name, type), src, 'udp').then((b) => parseAnswer(b!));
  assert.deepEqual((await ask('10.88.0.2', 'API.hearth.internal.')).a.map((a) => a.ip), ['10.88.0.1'], 'named on the egress list');
  assert.deepEqual(grants, ['10.88.0.2 api.hearth.internal 10.88.0.1'], 'granted like a forwarded answer');
  assert.equal((await ask('10.88.0.2', 'runtime.hearth.internal')).rcode, RCODE_NXDOMAIN, 'not on the list');
  assert.deepEqual((await ask('10.88.0.3', 'runtime.hearth.internal')).a.map((a) => a.ip), ['10.88.0.1'], 'open egress');
  assert.equal((await ask('10.88.0.4', 'api.hearth.internal')).rcode, RCODE_NXDOMAIN, 'air-gapped');
  assert.equal((await ask('10.88.0.3', 'api.hearth.internal', TYPE_AAAA)).a.length, 0);
  assert.deepEqual(upstreamAsked, [], 'never forwarded');
});
