/**
 * The edge's HAProxy configuration as text: renderHaproxy is pinned against
 * test/golden/haproxy.cfg (regenerate deliberately with UPDATE_GOLDEN=1 and
 * review the diff), and HAProxy itself checks that the rendered files parse
 * (`haproxy -c`), so a golden that HAProxy would refuse cannot be approved.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { DEFAULT_HAPROXY_LIMITS, renderHaproxy, routeServerName, type HaproxySpec } from '../../src/edge/haproxy-config.ts';
import { golden } from '../helpers/golden.ts';


const spec = (dir: string): HaproxySpec => ({
  dir, fallbackSocket: `${dir}/hearthd.sock`, logPort: 51400,
  http: { host: '0.0.0.0', port: 7080 }, https: { host: '0.0.0.0', port: 7443 },
  limits: DEFAULT_HAPROXY_LIMITS,
  servers: [{ name: routeServerName('ws_abc123', 3000), ip: '10.88.0.2', port: 3000 }, { name: routeServerName('ws_def456', 8080), ip: '10.88.0.3', port: 8080 }],
  hosts: [['k3j9x0a1b2.preview.localhost', 'ws_abc123.3000'], ['my-api.preview.localhost', 'ws_abc123.3000'], ['shop.example.com', 'ws_def456.8080']],
  certFiles: [`${dir}/certs/_preview/haproxy.pem`, `${dir}/certs/shop.example.com/haproxy.pem`],
});

test('the rendered configuration, map and certificate list are pinned', () => {
  const files = renderHaproxy(spec('/var/lib/hearth/edge/haproxy'));
  golden('haproxy.cfg', files['haproxy.cfg']);
  assert.equal(files['hosts.map'], 'k3j9x0a1b2.preview.localhost ws_abc123.3000\nmy-api.preview.localhost ws_abc123.3000\nshop.example.com ws_def456.8080\n');
  assert.equal(files['crt-list'], '/var/lib/hearth/edge/haproxy/certs/_preview/haproxy.pem\n/var/lib/hearth/edge/haproxy/certs/shop.example.com/haproxy.pem\n');
  assert.match(files.errors['503.http']!, /^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*retry-after: 1\r\n\r\n<!doctype html>/);
  assert.ok(!files.errors['404.http'], 'a 404 is hearthd’s answer (it knows pending domains), not a static page');
});

test('HAProxy accepts what is rendered (haproxy -c)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haproxy-cfg-'));
  try {
    const s = spec(dir);
    const files = renderHaproxy({ ...s, https: null, certFiles: [] });
    fs.mkdirSync(path.join(dir, 'errors'));
    for (const [n, t] of Object.entries(files.errors)) fs.writeFileSync(path.join(dir, 'errors', n), t);
    for (const n of ['haproxy.cfg', 'hosts.map', 'crt-list'] as const) fs.writeFileSync(path.join(dir, n), files[n]);
    const out = execFileSync('/usr/sbin/haproxy', ['-c', '-f', path.join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    assert.match(out, /Configuration file is valid/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('doctor’s HAProxy probe: this host’s binary, and what it refuses', async () => {
  const { judgeHaproxy, probeHaproxy } = await import('../../src/host/proxy/probe.ts');
  const here = await probeHaproxy();
  assert.equal(here.available, true, here.reason);
  assert.match(here.version!, /^2\.6\./);
  assert.deepEqual(judgeHaproxy('/x', 'HAProxy version 2.4.22 2023\nBuilt with OpenSSL version'), { available: false, binary: '/x', version: '2.4.22', reason: 'HAProxy 2.4.22 is older than 2.6 (dynamic servers and the certificate API are needed)' });
  assert.equal(judgeHaproxy('/x', 'HAProxy version 2.8.1 x\n').available, false, 'no OpenSSL');
  assert.equal((await probeHaproxy('/nonexistent/haproxy')).reason, '/nonexistent/haproxy not found: run `hearth setup` (installs Debian\'s haproxy)');
});
