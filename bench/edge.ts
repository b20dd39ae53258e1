/**
 * Edge proxy overhead and SSH session setup, inside a network namespace of
 * its own. A plain Node HTTP server in a node-20 workspace is loaded with
 * autocannon (a) directly on its internal address over the Hearth bridge
 * (the floor), (b) through a bare 12-line Node proxy (http.request with a
 * keep-alive agent: the floor of any proxy written on Node's http module,
 * in its own process like the edge) and (c) through the edge on loopback,
 * over HTTP and HTTPS;
 * then SSH session setup (connect, key exchange, public-key auth, exec
 * `true`, exit status) is timed with ssh2's client and with OpenSSH.
 * Prints JSON. Usage: node --import tsx bench/edge.ts [--seconds 8] [--connections 32] [--ssh-runs 30]
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
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
import { WORKSPACE_SERVER_JS } from '../test/helpers/public-plane.ts';

const script = fileURLToPath(import.meta.url);
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('seconds', 8);
const CONNECTIONS = arg('connections', 32);
const SSH_RUNS = arg('ssh-runs', 30);

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

/** The floor of a Node http proxy: parse, forward with a keep-alive agent, pipe back. Nothing else. */
const BARE_PROXY_JS = `
const http = require('node:http');
const [ip, port] = process.argv.slice(1);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
http.createServer((req, res) => {
  const up = http.request({ host: ip, port: Number(port), method: req.method, path: req.url, headers: req.headers, agent }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
  });
  up.on('error', () => { res.statusCode = 502; res.end(); });
  req.pipe(up);
}).listen(0, '127.0.0.1', function () { process.stdout.write(String(this.address().port) + '\\n'); });
`;

async function startBareProxy(ip: string, port: number): Promise<{ url: string; proc: ChildProcess }> {
  const proc = spawn(process.execPath, ['-e', BARE_PROXY_JS, ip, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const listening = await new Promise<string>((resolve, reject) => {
    proc.stdout!.once('data', (d) => resolve(String(d).trim()));
    proc.once('exit', (code) => reject(new Error(`bare proxy exited (${code})`)));
  });
  return { url: `http://127.0.0.1:${listening}/`, proc };
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
    const bare = await startBareProxy(ip, 3000);
    let bareProxy: Record<string, number>;
    try {
      bareProxy = await load(bare.url, { host }, false);
    } finally {
      bare.proc.kill();
    }
    const edgeHttp = await load(`${ep.edge}/`, { host }, false);
    const edgeHttps = await load(`${ep.edge_tls}/`, { host }, true);

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
      params: { seconds: SECONDS, connections: CONNECTIONS, ssh_runs: SSH_RUNS },
      proxy: {
        direct_internal_ip: direct, bare_node_proxy: bareProxy, edge_http: edgeHttp, edge_https: edgeHttps,
        edge_http_vs_direct_rps: ratio(edgeHttp.requests_per_s!, direct.requests_per_s!),
        bare_node_proxy_vs_direct_rps: ratio(bareProxy.requests_per_s!, direct.requests_per_s!),
        edge_http_vs_bare_node_proxy_rps: ratio(edgeHttp.requests_per_s!, bareProxy.requests_per_s!),
        edge_https_vs_direct_rps: ratio(edgeHttps.requests_per_s!, direct.requests_per_s!),
        target: 'edge requests/s ≥ 0.8 × direct (issue 7)',
      },
      ssh_session_setup_ms: { ssh2_client: percentiles(ssh2Samples), ssh2_client_until_authenticated: percentiles(readyMs), openssh_process: percentiles(opensshSamples), target: 'under 100 ms (issue 7)' },
    }, null, 2) + '\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await h.stop();
  }
}

if (inOwnNetns(script)) await main();
