/**
 * Workspace networking costs, in a network namespace of its own (netns.ts).
 * Prints JSON.
 *
 * 1. Workspace-to-workspace TCP through Hearth's bridge and firewall (ports
 *    isolated, routed through the host, the policy checked on every packet;
 *    B's ingress names A) beside the floor: two namespaces joined by a bare
 *    veth pair (no bridge, no nftables). Throughput (one stream, 64 KiB
 *    writes) and latency (1-byte request/response round trips). Target:
 *    within 80 % of the floor.
 * 2. Live policy updates (HostNetwork.setPolicy, one nft transaction) while
 *    the sets hold the policies of N workspaces, N up to 1 000; and the time
 *    of a whole-table load (hearthd restart: sync). Target: an update under
 *    50 ms with 1 000 workspaces' rules.
 *
 * Usage: node --import tsx bench/network.ts [--seconds 3] [--rtts 2000] [--updates 30]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { inOwnNetns, percentiles } from './netns.ts';
import { HostNetwork } from '../src/host/network/host-network.ts';
import { slotFor, type NetworkPlan } from '../src/host/network/slot.ts';
import { buildPolicy, type PolicyConfig } from '../src/core/network-policy.ts';

const script = fileURLToPath(import.meta.url);
const arg = (name: string, dflt: number) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : dflt; };
const SECONDS = arg('seconds', 3);
const RTTS = arg('rtts', 2000);
const UPDATES = arg('updates', 30);
const PORT = 7001;

/** A sink (throughput) and an echo (latency) server. */
const SERVER = `
const net = require('net');
net.createServer((s) => { s.on('data', () => {}); s.on('error', () => {}); }).listen(${PORT}, '0.0.0.0');
net.createServer((s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); s.on('error', () => {}); }).listen(${PORT + 1}, '0.0.0.0', () => console.log('ready'));`;

/** Client: stream for SECONDS, then RTTS 1-byte round trips; prints JSON. */
const CLIENT = (ip: string) => `
const net = require('net');
const chunk = Buffer.alloc(65536, 7);
const t0 = process.hrtime.bigint(); let bytes = 0; let done = false;
const s = net.connect(${PORT}, '${ip}', () => {
  const pump = () => { while (!done) { bytes += chunk.length; if (!s.write(chunk)) return s.once('drain', pump); } };
  setTimeout(() => { done = true; const secs = Number(process.hrtime.bigint() - t0) / 1e9; s.end(); rtt(bytes * 8 / secs / 1e9); }, ${SECONDS * 1000});
  pump();
});
function rtt(gbps) {
  const c = net.connect(${PORT + 1}, '${ip}', () => {
    c.setNoDelay(true); const us = []; let t;
    const one = () => { t = process.hrtime.bigint(); c.write('x'); };
    c.on('data', () => { us.push(Number(process.hrtime.bigint() - t) / 1000); if (us.length < ${RTTS}) one(); else { c.end(); us.sort((a, b) => a - b); console.log(JSON.stringify({ gbps, rtt_us_p50: us[us.length >> 1], rtt_us_p99: us[Math.floor(us.length * 0.99)] })); } });
    one();
  });
}`;

function inNs(ns: string, code: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('nsenter', [`--net=/run/netns/${ns}`, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; if (out.includes('ready')) resolve(out); });
    p.on('exit', (c) => (c === 0 ? resolve(out) : reject(new Error(`exit ${c}`))));
    servers.push(p);
  });
}
const servers: ReturnType<typeof spawn>[] = [];

async function measure(serverNs: string, clientNs: string, ip: string): Promise<{ gbps: number; rtt_us_p50: number; rtt_us_p99: number }> {
  await inNs(serverNs, SERVER);
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn('nsenter', [`--net=/run/netns/${clientNs}`, process.execPath, '-e', CLIENT(ip)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let o = '';
    p.stdout.on('data', (d) => { o += d; });
    p.on('exit', (c) => (c === 0 ? resolve(o) : reject(new Error(`client exit ${c}`))));
  });
  for (const s of servers.splice(0)) s.kill('SIGKILL');
  const r = JSON.parse(out.trim().split('\n').pop()!) as { gbps: number; rtt_us_p50: number; rtt_us_p99: number };
  return { gbps: Math.round(r.gbps * 100) / 100, rtt_us_p50: Math.round(r.rtt_us_p50), rtt_us_p99: Math.round(r.rtt_us_p99) };
}

const sh = (...a: string[]) => execFileSync(a[0]!, a.slice(1), { stdio: 'ignore' });

async function floor(): Promise<{ gbps: number; rtt_us_p50: number; rtt_us_p99: number }> {
  const [a, b] = ['hbvA', 'hbvB'];
  sh('ip', 'netns', 'add', a); sh('ip', 'netns', 'add', b);
  try {
    sh('ip', '-n', a, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b);
    for (const [ns, ip] of [[a, '10.250.0.1'], [b, '10.250.0.2']] as const) {
      sh('ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'); sh('ip', '-n', ns, 'link', 'set', 'eth0', 'up'); sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
    }
    return await measure(b, a, '10.250.0.2');
  } finally {
    sh('ip', 'netns', 'del', a); sh('ip', 'netns', 'del', b);
  }
}

async function throughBridge(net: HostNetwork, plan: NetworkPlan): Promise<{ gbps: number; rtt_us_p50: number; rtt_us_p99: number }> {
  const [sa, sb] = [slotFor(plan, 0), slotFor(plan, 1)];
  await net.attach(sa);
  await net.attach(sb);
  const ctx = (ip: string) => ({ ip, subnet: plan.subnet, agentPort: 9990 });
  await net.setPolicy(buildPolicy({ allow_internet: true, ingress: [], egress: [] }, ctx(sa.ip)));
  await net.setPolicy(buildPolicy({ allow_internet: true, ingress: [sa.ip], egress: [] }, ctx(sb.ip)));
  try {
    return await measure(sb.hostIf, sa.hostIf, sb.ip);
  } finally {
    await net.detach(sa); await net.detach(sb);
    await net.removePolicy(sa.ip); await net.removePolicy(sb.ip);
  }
}

/** A realistic mix: most open, some air-gapped with private links, some allow-listed with CIDRs and hostnames. */
function policyFor(plan: NetworkPlan, i: number) {
  const ip = slotFor(plan, i).ip;
  const peer = (k: number) => slotFor(plan, (i + k) % 1000).ip;
  const c: PolicyConfig = i % 10 < 6 ? { allow_internet: true, ingress: [peer(1)], egress: [] }
    : i % 10 < 8 ? { allow_internet: false, ingress: [peer(1), peer(2)], egress: [] }
      : { allow_internet: true, ingress: [peer(3), '10.89.0.0/24'], egress: [peer(1), `198.51.${i % 250}.0/24`, `api${i}.example.com`], outbound_ip: null };
  return buildPolicy(c, { ip, subnet: plan.subnet, agentPort: 9990 });
}

async function updates(net: HostNetwork, plan: NetworkPlan): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for (const n of [0, 100, 250, 500, 1000]) {
    const all = Array.from({ length: n }, (_, i) => policyFor(plan, i));
    const t0 = performance.now();
    await net.sync(all);
    const syncMs = performance.now() - t0;
    // Toggle one workspace between two different policies (ingress, egress list, CIDR, air-gap): each is one transaction.
    const target = slotFor(plan, 1500).ip;
    const ctx = { ip: target, subnet: plan.subnet, agentPort: 9990 };
    const p1 = buildPolicy({ allow_internet: true, ingress: [slotFor(plan, 1).ip], egress: [] }, ctx);
    const p2 = buildPolicy({ allow_internet: false, ingress: [slotFor(plan, 2).ip, '10.90.0.0/24'], egress: [slotFor(plan, 3).ip, '203.0.113.0/24'] }, ctx);
    await net.setPolicy(p1);
    const samples: number[] = [];
    for (let k = 0; k < UPDATES; k++) {
      const t = performance.now();
      await net.setPolicy(k % 2 ? p1 : p2);
      samples.push(performance.now() - t);
    }
    const elements = all.reduce((acc, p) => acc + p.egress.length + p.ingress.length, 0);
    rows.push({ workspaces: n, policy_rules: elements, sync_ms: Math.round(syncMs), update_ms: percentiles(samples) });
  }
  // The floor of any update: spawning nft with an empty transaction, on this machine, now.
  const spawnSamples: number[] = [];
  for (let k = 0; k < UPDATES; k++) {
    const t = performance.now();
    execFileSync('nft', ['-f', '-'], { input: '' });
    spawnSamples.push(performance.now() - t);
  }
  rows.push({ nft_noop_spawn_ms: percentiles(spawnSamples) });
  return rows;
}

async function main(): Promise<void> {
  const plan: NetworkPlan = { bridge: 'hbench0', subnet: '10.88.0.0/16', linkPrefix: 'hbw' };
  const runDir = mkdtempSync(join(tmpdir(), 'hearth-bench-net-'));
  const net = new HostNetwork(plan, runDir);
  try {
    await net.ensure();
    const bare = await floor();
    const bridge = await throughBridge(net, plan);
    const upd = await updates(net, plan);
    const at1000 = upd.find((r) => r.workspaces === 1000) as { update_ms: { p50: number; p90: number } };
    process.stdout.write(JSON.stringify({
      bench: 'network',
      machine: { kernel: execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim() },
      ws_to_ws_tcp: {
        veth_pair_floor: bare, hearth_bridge: bridge,
        throughput_ratio: Math.round((bridge.gbps / bare.gbps) * 100) / 100,
        rtt_p50_ratio: Math.round((bare.rtt_us_p50 / bridge.rtt_us_p50) * 100) / 100,
        target: 'throughput and latency within 80 % of the floor (ratio >= 0.8)',
      },
      policy_updates: upd,
      target_updates: { under_ms: 50, p50_at_1000: at1000.update_ms.p50, p90_at_1000: at1000.update_ms.p90, met_at_p50: at1000.update_ms.p50 < 50 },
    }, null, 2) + '\n');
  } finally {
    for (const s of servers) s.kill('SIGKILL');
    await net.teardown();
    rmSync(runDir, { recursive: true, force: true });
  }
}

if (inOwnNetns(script)) await main();
