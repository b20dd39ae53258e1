/**
 * Edge proxy overhead, route churn and SSH session setup, inside a network
 * namespace of its own. A plain Node HTTP server in a node-20 workspace is
 * loaded with autocannon, one after the other in one run, (a) directly on
 * its internal address over the Hearth bridge (the floor), (b) through a
 * bare HAProxy with a static configuration in front of the same server (the
 * same binary, one frontend per scheme, one server line, the Hearth preview
 * certificate, no logging: the floor of the edge's data path) and (c)
 * through the Hearth edge (HAProxy driven by hearthd: Host map, route
 * servers, access log), over HTTP and HTTPS; targets: edge ≥ 0.9 × the bare
 * proxy's requests/s and p99 ≤ 1.2 × its p99.
 * Route churn: an edge data path with 10 000 routes loaded (in-process,
 * fake store, a loopback origin) adds and revokes one route at a time; each
 * change is timed until HAProxy applied it (target ≤ 10 ms p50).
 * Then SSH session setup (connect, key exchange, public-key auth, exec
 * `true`, exit status) is timed with ssh2's client and with OpenSSH.
 * Prints JSON. Usage: node --import tsx bench/edge.ts [--seconds 8] [--connections 32] [--ssh-runs 30] [--routes 10000]
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import pino from 'pino';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import { Oblien, Runtime } from 'oblien';
import { inOwnNetns, percentiles } from './netns.ts';
import { startHearth } from '../test/helpers/hearth.ts';
import { waitUntil } from '../test/helpers/wait.ts';
import { WORKSPACE_SERVER_JS, freePort } from '../test/helpers/public-plane.ts';
import { EdgeDataPath } from '../src/edge/data-path.ts';
import { EdgeFallback } from '../src/edge/fallback.ts';
import { fileAccessLog } from '../src/edge/access-log.ts';
import type { EdgeRoute } from '../src/control/public-access.ts';

const script = fileURLToPath(import.meta.url);
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('seconds', 8);
const CONNECTIONS = arg('connections', 32);
const SSH_RUNS = arg('ssh-runs', 30);
const ROUTES = arg('routes', 10_000);

async function load(url: string, headers: Record<string, string>, tls: boolean): Promise<Record<string, number>> {
  const autocannon = (await import('autocannon' as string)).default;
  const result: any = await autocannon({
    url, connections: CONNECTIONS, duration: SECONDS, headers, pipelining: 1,
    ...(tls ? { servername: headers.host, tlsOptions: { rejectUnauthorized: false, servername: headers.host } } : {}),
  });
  return {
    requests_per_s: Math.round(result.requests.average), latency_p50_ms: result.latency.p50, latency_p99_ms: result.latency.p99,
    errors: result.errors + result.non2xx, timeouts: result.timeouts,
  };
}

/** The floor of the edge's data path: the same HAProxy with a static configuration, one server, no logging. */
async function startBareHaproxy(dir: string, ip: string, port: number, pem: string): Promise<{ http: string; https: string; proc: ChildProcess }> {
  const [hp, sp] = [await freePort(), await freePort()];
  const cfg = path.join(dir, 'bare-haproxy.cfg');
  fs.writeFileSync(path.join(dir, 'bare.pem'), pem, { mode: 0o600 });
  fs.writeFileSync(cfg, [
    'defaults', '  mode http', '  option forwardfor', '  timeout connect 2s', '  timeout client 30s', '  timeout server 60s',
    'frontend h', `  bind 127.0.0.1:${hp}`, '  default_backend b',
    'frontend s', `  bind 127.0.0.1:${sp} ssl crt ${path.join(dir, 'bare.pem')} alpn h2,http/1.1`, '  default_backend b',
    'backend b', '  http-reuse safe', `  server s ${ip}:${port}`, '',
  ].join('\n'));
  const proc = spawn('/usr/sbin/haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitUntil('bare haproxy', async () => new Promise<boolean>((r) => {
    const s = net.connect(hp, '127.0.0.1', () => { s.destroy(); r(true); });
    s.on('error', () => r(false));
  }), 10_000, 20);
  return { http: `http://127.0.0.1:${hp}/`, https: `https://127.0.0.1:${sp}/`, proc };
}

/** Add and revoke single routes on a data path holding `n` routes; each change timed until HAProxy applied it. */
async function routeChurn(dir: string, n: number): Promise<Record<string, unknown>> {
  const origin = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
  const port = (origin.address() as net.AddressInfo).port;
  const routes = new Map<string, EdgeRoute>();
  // One workspace port per route, as exposing n workspaces would give.
  for (let i = 0; i < n; i++) routes.set(`r${i}.preview.bench`, { hostname: `r${i}.preview.bench`, workspaceId: `ws_${i}`, port, source: 'preview' });
  const base = path.join(dir, 'churn');
  const fallback = new EdgeFallback({
    routes: { route: (h) => routes.get(h), onRoutesRemoved: () => () => undefined },
    workspace: async () => null, internalIp: () => '127.0.0.1', certs: null, log: pino({ level: 'silent' }),
    lifecycle: { wake: async (ws) => ws, touch: () => undefined }, onRunning: () => undefined,
  });
  await fallback.listen(path.join(base, 'hearthd.sock')).catch(async () => {
    fs.mkdirSync(base, { recursive: true });
    await fallback.listen(path.join(base, 'hearthd.sock'));
  });
  const httpPort = await freePort();
  const dp = new EdgeDataPath({
    dir: path.join(base, 'haproxy'), accessLog: fileAccessLog(base), fallbackSocket: path.join(base, 'hearthd.sock'),
    http: { host: '127.0.0.1', port: httpPort }, https: null,
    routes: () => [...routes.values()],
    targets: async (ids) => new Map(ids.map((id) => [id, { running: true, ip: '127.0.0.1' }])),
    certs: null, log: pino({ level: 'silent' }),
  });
  const get = (host: string) => new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: httpPort, headers: { host }, agent: false }, (res) => { res.resume(); resolve(res.statusCode!); }).on('error', reject);
  });
  try {
    const t0 = performance.now();
    await dp.start();
    const startMs = performance.now() - t0;
    const add: number[] = [];
    const revoke: number[] = [];
    for (let i = 0; i < 60; i++) {
      const host = `churn${i}.preview.bench`;
      routes.set(host, { hostname: host, workspaceId: `ws_churn${i}`, port, source: 'preview' });
      let t = performance.now();
      await dp.sync();
      add.push(performance.now() - t);
      if (await get(host) !== 200) throw new Error(`${host} not served after its sync`);
      routes.delete(host);
      t = performance.now();
      await dp.sync();
      revoke.push(performance.now() - t);
      if (await get(host) !== 404) throw new Error(`${host} still served after its revoke`);
    }
    return { routes_loaded: n, haproxy_start_with_routes_ms: Math.round(startMs), add_route_ms: percentiles(add.slice(10)), revoke_route_ms: percentiles(revoke.slice(10)), target: 'visible in ≤ 10 ms p50 with 10 000 routes (issue 17)' };
  } finally {
    await dp.close();
    await fallback.close();
    await new Promise((r) => origin.close(r));
  }
}

const readyMs: number[] = [];

function sshOnce(port: number, user: string, privateKey: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const c = new ssh2.Client();
    c.on('ready', () => {
      readyMs.push(performance.now() - t);
      c.exec('true', (err, stream) => {
        if (err) { reject(err); return; }
        stream.on('exit', () => undefined);
        stream.on('close', () => { resolve(performance.now() - t); c.end(); });
        stream.resume();
      });
    });
    c.on('error', reject);
    c.on('handshake', () => c.setNoDelay(true));
    c.connect({ host: '127.0.0.1', port, username: user, privateKey, hostVerifier: () => true });
  });
}

async function main(): Promise<void> {
  const h = await startHearth({ extraArgs: ['--ssh-listen', '127.0.0.1:0'] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-bench-edge-'));
  try {
    const ep = JSON.parse(fs.readFileSync(path.join(h.dataDir, 'endpoints.json'), 'utf8'));
    const client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
    const ws = await client.workspaces.create({ image: 'node-20', config: { cpus: 1, ttl: '30m' } } as never) as Record<string, any>;
    const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
    const rt = new Runtime({ token, baseUrl: h.runtime });
    await rt.files.write({ fullPath: '/app/server.js', content: WORKSPACE_SERVER_JS });
    await rt.exec.run(['sh', '-c', 'PORT=3000 nohup node /app/server.js >/tmp/server.log 2>&1 &']);
    await waitUntil('the server', async () => (await rt.exec.run(['cat', '/tmp/server.log'])).stdout?.includes('listening'), 20_000, 100);
    const port = await client.workspaces.publicAccess.expose(ws.id, { port: 3000 }) as Record<string, any>;
    const host = new URL(port.url).hostname;
    const ip = ws.info.internal_ip as string;

    const direct = await load(`http://${ip}:3000/`, {}, false);
    const pem = fs.readFileSync(path.join(h.dataDir, 'edge', 'certs', '_preview', 'haproxy.pem'), 'utf8');
    const bare = await startBareHaproxy(dir, ip, 3000, pem);
    let bareHttp: Record<string, number>;
    let bareHttps: Record<string, number>;
    try {
      bareHttp = await load(bare.http, { host }, false);
      bareHttps = await load(bare.https, { host }, true);
    } finally {
      bare.proc.kill();
    }
    const edgeHttp = await load(`${ep.edge}/`, { host }, false);
    const edgeHttps = await load(`${ep.edge_tls}/`, { host }, true);
    const churn = await routeChurn(dir, ROUTES);

    // SSH: a key, then N sessions each doing exec `true` to its exit status.
    const key = path.join(dir, 'id');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    await client.workspaces.ssh.enable(ws.id);
    await client.workspaces.ssh.setKey(ws.id, { public_key: fs.readFileSync(`${key}.pub`, 'utf8') });
    const sshPort = Number(new URL(ep.ssh).port);
    const privateKey = fs.readFileSync(key);
    await sshOnce(sshPort, ws.id, privateKey); // warm (bundling, agent keep-alive)
    readyMs.length = 0;
    const ssh2Samples: number[] = [];
    for (let i = 0; i < SSH_RUNS; i++) ssh2Samples.push(await sshOnce(sshPort, ws.id, privateKey));
    const opensshSamples: number[] = [];
    for (let i = 0; i < Math.min(SSH_RUNS, 15); i++) {
      const t = performance.now();
      const r = spawnSync('ssh', ['-p', String(sshPort), '-i', key, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', `UserKnownHostsFile=${dir}/kh`, '-o', 'LogLevel=ERROR', `${ws.id}@127.0.0.1`, 'true']);
      if (r.status !== 0) throw new Error(`ssh failed: ${r.stderr}`);
      opensshSamples.push(performance.now() - t);
    }
    const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;
    process.stdout.write(JSON.stringify({
      bench: 'edge',
      machine: { cpus: os.cpus().length, node: process.version },
      params: { seconds: SECONDS, connections: CONNECTIONS, ssh_runs: SSH_RUNS, routes: ROUTES },
      proxy: {
        direct_internal_ip: direct, bare_haproxy_http: bareHttp, bare_haproxy_https: bareHttps, edge_http: edgeHttp, edge_https: edgeHttps,
        bare_haproxy_http_vs_direct_rps: ratio(bareHttp.requests_per_s!, direct.requests_per_s!),
        edge_http_vs_direct_rps: ratio(edgeHttp.requests_per_s!, direct.requests_per_s!),
        edge_http_vs_bare_haproxy_rps: ratio(edgeHttp.requests_per_s!, bareHttp.requests_per_s!),
        edge_https_vs_bare_haproxy_rps: ratio(edgeHttps.requests_per_s!, bareHttps.requests_per_s!),
        edge_http_vs_bare_haproxy_p99: ratio(edgeHttp.latency_p99_ms!, bareHttp.latency_p99_ms!),
        edge_https_vs_bare_haproxy_p99: ratio(edgeHttps.latency_p99_ms!, bareHttps.latency_p99_ms!),
        target: 'edge requests/s ≥ 0.9 × bare HAProxy and p99 ≤ 1.2 × bare HAProxy, HTTP and HTTPS (issue 17)',
      },
      route_churn: churn,
      ssh_session_setup_ms: { ssh2_client: percentiles(ssh2Samples), ssh2_client_until_authenticated: percentiles(readyMs), openssh_process: percentiles(opensshSamples), target: 'under 100 ms (issue 7)' },
    }, null, 2) + '\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await h.stop();
  }
}

if (inOwnNetns(script)) await main();
