import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exposeHostname, isUnder, normalizeHost, previewHash, publicUrl, validateDomain, validatePort, validatePreviewSlug } from '../../src/core/hostnames.ts';
import { parsePublicPlaneFlags } from '../../src/cli/args/public-plane.ts';
import { trustFileName } from '../../src/cli/commands/ca.ts';
import { ValidationFailed } from '../../src/core/errors.ts';

test('Host headers normalize to a bare lowercase name, or null', () => {
  const cases: [string | undefined, string | null][] = [
    ['Abc.Preview.Localhost:8443', 'abc.preview.localhost'], ['app.example.com.', 'app.example.com'], ['x.y', 'x.y'],
    [undefined, null], ['', null], ['[::1]:80', null], ['a..b', null], ['-bad.example', null], ['bad_.example', null],
    ['host:99999x', null], ['a'.repeat(64) + '.com', null], ['127.0.0.1:80', '127.0.0.1'],
  ];
  for (const [input, want] of cases) assert.equal(normalizeHost(input), want, String(input));
});

test('custom domains must be real hostnames', () => {
  assert.equal(validateDomain('API.Example.com'), 'api.example.com');
  assert.equal(validateDomain('https://api.example.com/path'), 'api.example.com');
  for (const bad of ['localhost', '10.0.0.1', 'a b.com', '', 42, '*.example.com']) assert.throws(() => validateDomain(bad), ValidationFailed, String(bad));
});

test('ports, slugs and hashes', () => {
  assert.equal(validatePort(3000), 3000);
  assert.equal(validatePort('8080'), 8080);
  for (const bad of [0, 65536, 1.5, 'x', -1, 9990]) assert.throws(() => validatePort(bad), ValidationFailed, String(bad));
  assert.equal(validatePreviewSlug('my-api'), 'my-api');
  for (const bad of ['ab', '-ab', 'ab-', 'AB', 'a_b', 'x'.repeat(64)]) assert.throws(() => validatePreviewSlug(bad), ValidationFailed, bad);
  const hashes = new Set(Array.from({ length: 200 }, () => previewHash()));
  assert.equal(hashes.size, 200);
  for (const h of hashes) assert.match(h, /^[a-z0-9]{10}$/);
});

test('§9 URL rules: hash, slug + base, exact hostname', () => {
  const pd = 'preview.localhost';
  assert.deepEqual(exposeHostname({ hash: 'h1', slug: null, domain: null }, pd), { hostname: 'h1.preview.localhost', custom: false });
  assert.deepEqual(exposeHostname({ hash: 'h1', slug: 'api', domain: null }, pd), { hostname: 'api.preview.localhost', custom: false });
  assert.deepEqual(exposeHostname({ hash: 'h1', slug: 'my-api', domain: 'opsh.io' }, pd), { hostname: 'my-api.opsh.io', custom: true });
  assert.deepEqual(exposeHostname({ hash: 'h1', slug: null, domain: 'api.yourdomain.com' }, pd), { hostname: 'api.yourdomain.com', custom: true });
  assert.deepEqual(exposeHostname({ hash: 'h1', slug: null, domain: pd }, pd), { hostname: 'h1.preview.localhost', custom: false });
  assert.equal(publicUrl('a.b', { http: 80, https: 443 }), 'https://a.b');
  assert.equal(publicUrl('a.b', { http: 7080, https: 7443 }), 'https://a.b:7443');
  assert.equal(publicUrl('a.b', { http: 7080, https: null }), 'http://a.b:7080');
  assert.ok(isUnder('x.preview.localhost', 'preview.localhost'));
  assert.ok(!isUnder('xpreview.localhost', 'preview.localhost'));
});

test('serve flags: defaults follow --listen, off disables, bad values are refused with a hint', () => {
  assert.deepEqual(parsePublicPlaneFlags({}, { host: '127.0.0.1', port: 7070 }), {
    edgeHttp: { host: '127.0.0.1', port: 7080 }, edgeHttps: { host: '127.0.0.1', port: 7443 }, ssh: { host: '127.0.0.1', port: 2222 },
  });
  assert.deepEqual(parsePublicPlaneFlags({}, { host: '127.0.0.1', port: 0 }).ssh, { host: '127.0.0.1', port: 0 });
  const o = parsePublicPlaneFlags({ 'edge-tls-listen': 'off', 'ssh-listen': '0.0.0.0:22', 'preview-domain': 'Dev.Example.com', 'acme-directory': 'https://127.0.0.1:14000/dir', 'dns-server': '127.0.0.1:5353' }, { host: '127.0.0.1', port: 7070 });
  assert.equal(o.edgeHttps, null);
  assert.deepEqual(o.ssh, { host: '0.0.0.0', port: 22 });
  assert.equal(o.previewDomain, 'dev.example.com');
  assert.deepEqual(o.dnsServers, ['127.0.0.1:5353']);
  assert.throws(() => parsePublicPlaneFlags({ 'preview-domain': 'localhost' }, { host: '127.0.0.1', port: 0 }), /not a domain/);
  assert.throws(() => parsePublicPlaneFlags({ 'acme-directory': 'http://x' }, { host: '127.0.0.1', port: 0 }), /https/);
  assert.throws(() => parsePublicPlaneFlags({ 'edge-listen': 'nope' }, { host: '127.0.0.1', port: 0 }), /HOST:PORT/);
  assert.equal(parsePublicPlaneFlags({ 'domain-recheck': '5' }, { host: '127.0.0.1', port: 0 }).domainRecheckMs, 5000);
  for (const bad of ['0', 'x', '1.5', '100000']) assert.throws(() => parsePublicPlaneFlags({ 'domain-recheck': bad }, { host: '127.0.0.1', port: 0 }), /seconds/);
});

test('hearth ca: the trust-store file name is stable per CA', () => {
  assert.equal(trustFileName('AB:CD:EF:01:23:45:67:89:AB:CD'), 'hearth-ca-abcdef0123456789.crt');
});
