/**
 * Pulls as request forgery from the host, performed: a tenant-chosen
 * registry (in-process, on loopback, listed by its exact host:port as an
 * operator would) redirects to another loopback service, to the cloud
 * metadata address, hands out a token realm on loopback, answers errors
 * with a host service's words in the body; a name resolves to loopback at
 * connection time. None of it may reach the victim service or come back in
 * an error. Traffic stays on 127.0.0.1: nothing here connects anywhere else
 * (refused URLs are refused before any connection is tried).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import type dns from 'node:dns';
import { RegistryClient } from '../../src/host/images/oci/registry.ts';
import { registryConfig, type RegistryConfig } from '../../src/host/images/oci/auth.ts';
import { httpGet } from '../../src/host/images/oci/http.ts';
import { OutboundRefusedError, checkUrl, checkedLookup, classifyAddress, type Resolver } from '../../src/host/images/oci/outbound.ts';
import { parseReference } from '../../src/host/images/oci/reference.ts';
import { ImageLimitError, PullNotAllowedError, RegistryError, UnsafeLayerError } from '../../src/host/images/errors.ts';
import { errorBody, toHttpError } from '../../src/api/errors.ts';

interface Server {
  port: number;
  host: string;
  requests: string[];
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  close(): Promise<void>;
}

async function serve(): Promise<Server> {
  const s: Server = { port: 0, host: '', requests: [], handler: (_q, r) => void r.writeHead(404).end(), close: async () => undefined };
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    s.requests.push(`${req.method} ${req.url}`);
    s.handler(req, res);
  });
  server.on('connection', (c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  s.port = (server.address() as net.AddressInfo).port;
  s.host = `127.0.0.1:${s.port}`;
  s.close = async () => {
    for (const c of sockets) c.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return s;
}

const SECRET = 'HOST-SECRET-aws-key-AKIA0000';
let registry: Server;
let victim: Server;

before(async () => {
  registry = await serve();
  victim = await serve();
  victim.handler = (_q, r) => void r.writeHead(500, { 'content-type': 'text/plain' }).end(SECRET);
});
after(async () => {
  await registry.close();
  await victim.close();
});

/** The attacker's registry is listed exactly (host:port), as an operator lists a private registry; the victim is not. */
const cfg = (over: Partial<RegistryConfig> = {}): RegistryConfig => ({ ...registryConfig({ HEARTH_PRIVATE_REGISTRIES: registry.host }), timeoutMs: 3000, ...over });
const ref = () => parseReference(`${registry.host}/demo/app:v1`);

async function refused(p: Promise<unknown>, what: string): Promise<Error> {
  let err: Error | undefined;
  await assert.rejects(p, (e: Error) => {
    err = e;
    return true;
  });
  assert.ok(err instanceof PullNotAllowedError, `${what}: refused by policy, not tried (got ${err?.stack})`);
  assert.ok(!err.message.includes(SECRET), `${what}: no body in the message`);
  return err;
}

test('addresses: loopback, link-local, private, CGNAT, ULA, unspecified and IPv4-carrying IPv6 forms are not public', () => {
  const cases: Array<[string, string]> = [
    ['127.0.0.1', 'loopback'], ['127.255.0.9', 'loopback'], ['::1', 'loopback'], ['169.254.169.254', 'link-local'], ['fe80::1', 'link-local'],
    ['10.1.2.3', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.1.1', 'private'], ['100.64.0.1', 'private'],
    ['100.127.255.255', 'private'], ['fd00::1', 'private'], ['fc00::1', 'private'], ['0.0.0.0', 'unspecified'], ['::', 'unspecified'],
    ['::ffff:127.0.0.1', 'loopback'], ['::ffff:7f00:1', 'loopback'], ['::ffff:169.254.169.254', 'link-local'], ['64:ff9b::a9fe:a9fe', 'link-local'],
    ['2002:c0a8:0101::1', 'private'], ['224.0.0.1', 'multicast'], ['ff02::1', 'multicast'], ['198.18.0.1', 'reserved'], ['255.255.255.255', 'reserved'],
    ['8.8.8.8', 'public'], ['172.32.0.1', 'public'], ['100.128.0.1', 'public'], ['2606:4700::1111', 'public'], ['::ffff:8.8.8.8', 'public'],
  ];
  for (const [ip, cls] of cases) assert.equal(classifyAddress(ip), cls, ip);
});

test('URLs: plain http, address literals and localhost only when listed; other schemes never', () => {
  const none = { listed: [] };
  const listed = { listed: ['127.0.0.1:5000', 'reg.lan'] };
  const bad = ['http://registry.example.com/v2/', 'https://127.0.0.1:5000/', 'https://169.254.169.254/', 'https://[::1]/', 'https://[::ffff:127.0.0.1]/',
    'https://2130706433/', 'https://0x7f.1/', 'https://localhost/', 'https://LOCALHOST./', 'https://a.localhost/', 'file:///etc/passwd', 'ftp://x/', 'https://u:p@example.com/'];
  for (const u of bad) assert.throws(() => checkUrl(none, new URL(u)), OutboundRefusedError, u);
  assert.throws(() => checkUrl(listed, new URL('http://127.0.0.1:5001/')), OutboundRefusedError, 'listed on one port only');
  for (const u of ['https://registry.example.com/v2/', 'https://8.8.8.8/']) checkUrl(none, new URL(u));
  for (const u of ['http://127.0.0.1:5000/v2/', 'http://reg.lan:1234/', 'https://reg.lan/']) checkUrl(listed, new URL(u));
});

test('DNS is checked where the connection resolves it: a name that rebinds to loopback gets nowhere', async () => {
  let calls = 0;
  // First answer public, then loopback: what a rebinding attacker's DNS server does.
  const rebinding: Resolver = (_h, _o, cb) => cb(null, [{ address: calls++ === 0 ? '93.184.216.34' : '127.0.0.1', family: 4 }]);
  const policy = { listed: [], resolve: rebinding };
  const lookup = checkedLookup(policy, new URL('https://rebind.test/'));
  const first = await new Promise<string>((res, rej) => lookup('rebind.test', {}, (e, a) => (e ? rej(e) : res(a as string))));
  assert.equal(first, '93.184.216.34');
  await assert.rejects(new Promise((res, rej) => lookup('rebind.test', { all: true }, (e, a) => (e ? rej(e) : res(a)))), OutboundRefusedError);
  // Mixed answers: only the public ones are used.
  const mixed: Resolver = (_h, _o, cb) => cb(null, [{ address: '127.0.0.1', family: 4 }, { address: '1.1.1.1', family: 4 }]);
  const got = await new Promise<dns.LookupAddress[]>((res, rej) => checkedLookup({ listed: [], resolve: mixed }, new URL('https://m.test/'))('m.test', { all: true }, (e, a) => (e ? rej(e) : res(a as dns.LookupAddress[]))));
  assert.deepEqual(got.map((a) => a.address), ['1.1.1.1']);

  // End to end: the connection itself goes through the checked lookup.
  const toVictim: Resolver = (_h, _o, cb) => cb(null, [{ address: '127.0.0.1', family: 4 }]);
  const before = victim.requests.length;
  await assert.rejects(httpGet(`https://victim.test:${victim.port}/`, {}, AbortSignal.timeout(3000), { listed: [], resolve: toVictim }), OutboundRefusedError);
  assert.equal(victim.requests.length, before, 'nothing reached the service behind the name');
  const res = await httpGet(`http://victim.test:${victim.port}/ok`, {}, AbortSignal.timeout(3000), { listed: [`victim.test:${victim.port}`], resolve: toVictim });
  res.body.resume();
  assert.equal(res.status, 500, 'a listed name may resolve to loopback');
  assert.equal(victim.requests.length, before + 1);
});

test('a redirect to another loopback service is refused and never followed', async () => {
  registry.handler = (_q, r) => void r.writeHead(302, { location: `http://${victim.host}/latest/secret` }).end();
  const before = victim.requests.length;
  const e = await refused(new RegistryClient(cfg()).manifest(ref(), 'v1'), 'redirect to loopback');
  assert.match(e.message, new RegExp(`connect to ${victim.host.replace(/\./g, '\\.')}`));
  assert.match((e as Error & { hint?: string }).hint ?? '', /HEARTH_PRIVATE_REGISTRIES/);
  assert.equal(victim.requests.length, before, 'the victim got no request');
});

test('a redirect to the link-local metadata address is refused before any connection', async () => {
  for (const location of ['http://169.254.169.254/latest/meta-data/iam/', 'https://169.254.169.254/latest/meta-data/', 'https://[::ffff:169.254.169.254]/', 'https://[fd00:ec2::254]/']) {
    registry.handler = (_q, r) => void r.writeHead(307, { location }).end();
    await refused(new RegistryClient(cfg()).manifest(ref(), 'v1'), location);
  }
});

test('a token realm on loopback is refused and never fetched', async () => {
  registry.handler = (_q, r) => void r.writeHead(401, { 'www-authenticate': `Bearer realm="http://${victim.host}/token",service="x"` }).end();
  const before = victim.requests.length;
  await refused(new RegistryClient(cfg()).manifest(ref(), 'v1'), 'realm on loopback');
  assert.equal(victim.requests.length, before, 'the victim got no token request');
  registry.handler = (_q, r) => void r.writeHead(401, { 'www-authenticate': 'Bearer realm="http://169.254.169.254/token"' }).end();
  await refused(new RegistryClient(cfg()).manifest(ref(), 'v1'), 'realm on the metadata address');
});

test('an unlisted loopback registry is refused (no plain http to it either)', async () => {
  registry.handler = (_q, r) => void r.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end('{}');
  const before = registry.requests.length;
  await refused(new RegistryClient(cfg({ privateRegistries: [] })).manifest(ref(), 'v1'), 'unlisted loopback registry');
  assert.equal(registry.requests.length, before);
});

test('error bodies are never echoed into errors: only a registry error code is', async () => {
  const client = new RegistryClient(cfg());
  for (const status of [500, 403, 418]) {
    registry.handler = (_q, r) => void r.writeHead(status, { 'content-type': 'text/plain' }).end(SECRET);
    await assert.rejects(client.manifest(ref(), 'v1'), (e: Error) => {
      assert.ok(e instanceof RegistryError, String(e));
      assert.ok(!e.message.includes(SECRET) && !e.message.includes('AKIA'), `HTTP ${status}: ${e.message}`);
      assert.match(e.message, new RegExp(`HTTP ${status}`));
      return true;
    });
    await assert.rejects(client.blob(ref(), { mediaType: 'x', digest: `sha256:${'a'.repeat(64)}`, size: 10 }), (e: Error) => !e.message.includes(SECRET));
  }
  registry.handler = (_q, r) => void r.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: SECRET }] }));
  await assert.rejects(client.manifest(ref(), 'v1'), (e: Error) => /\(UNKNOWN\)/.test(e.message) && !e.message.includes(SECRET));
  registry.handler = (_q, r) => void r.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: SECRET }] }));
  await assert.rejects(client.manifest(ref(), 'v1'), (e: Error) => !e.message.includes(SECRET));
  // The token service's error body is not echoed either.
  registry.handler = (q, r) => {
    if (q.url?.startsWith('/token')) return void r.writeHead(500).end(SECRET);
    r.writeHead(401, { 'www-authenticate': `Bearer realm="http://${registry.host}/token"` }).end();
  };
  await assert.rejects(new RegistryClient(cfg()).manifest(ref(), 'v1'), (e: Error) => e instanceof RegistryError && /token service answered HTTP 500/.test(e.message) && !e.message.includes(SECRET));
});

test('a layer blob larger than HEARTH_IMAGE_MAX_COMPRESSED_BYTES is refused before it is downloaded', async () => {
  const before = registry.requests.length;
  const c = cfg({ limits: { maxCompressedBytes: 1000, maxUncompressedBytes: 10_000, maxEntries: 10, maxPathDepth: 5 } });
  await assert.rejects(new RegistryClient(c).blobToFile(ref(), { mediaType: 'x', digest: `sha256:${'b'.repeat(64)}`, size: 1001 }, '/nonexistent/never-written'),
    (e: Error & { hint?: string }) => e.name === 'ImageLimitError' && /HEARTH_IMAGE_MAX_COMPRESSED_BYTES/.test(e.hint ?? ''));
  assert.equal(registry.requests.length, before);
});

test('refusals reach the API as validation errors on the image field, with their hint', async () => {
  registry.handler = (_q, r) => void r.writeHead(302, { location: 'http://169.254.169.254/' }).end();
  const pull = await refused(new RegistryClient(cfg()).manifest(ref(), 'v1'), 'redirect');
  for (const e of [pull, new UnsafeLayerError('d/x', 'passes through the symlink "d"'), new ImageLimitError('HEARTH_IMAGE_MAX_ENTRIES', 10, 'a layer has more than 10 entries')]) {
    const h = toHttpError(e);
    assert.equal(h.status, 400, e.name);
    const body = errorBody(h) as unknown as Record<string, unknown>;
    assert.equal(JSON.stringify(body).includes('validation_error'), true, JSON.stringify(body));
    assert.equal(JSON.stringify(body).includes('"image"'), true, JSON.stringify(body));
  }
  registry.handler = (_q, r) => void r.writeHead(401, { 'www-authenticate': 'Bearer realm="not a url"' }).end();
  await assert.rejects(new RegistryClient(cfg()).manifest(ref(), 'v1'), (e: Error) => e instanceof RegistryError && /realm is not a URL/.test(e.message));
});
