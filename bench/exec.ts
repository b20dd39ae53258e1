/**
 * Exec round trip: `exec.run(['true'])` through the official SDK, via the
 * data-plane gateway and directly to the agent, beside the floor measured
 * in the same run: a bare Node HTTP server on loopback that spawns the same
 * `/bin/true` per request, called the same way (fetch, keep-alive).
 * Prints JSON. Usage: node --import tsx bench/exec.ts [--runs 200]
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Oblien, Runtime } from 'oblien';
import { inOwnNetns } from './netns.ts';
import { stats } from './create.ts';
import { startHearth } from '../test/helpers/hearth.ts';

const script = fileURLToPath(import.meta.url);
const arg = (name: string, d: number) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : d; };
const RUNS = arg('runs', 200);

/** The floor: one request, one fork+exec of /bin/true, answered when it exits. */
async function bareSpawnServer(runs: number): Promise<number[]> {
  const server = http.createServer((req, res) => {
    req.resume();
    const child = spawn('/bin/true', [], { stdio: 'ignore' });
    child.on('exit', (code) => res.end(JSON.stringify({ exit_code: code })));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/exec`;
  const samples: number[] = [];
  try {
    for (let i = 0; i < runs + 10; i++) {
      const t = performance.now();
      await (await fetch(url, { method: 'POST', body: '{"cmd":["true"]}' })).json();
      if (i >= 10) samples.push(performance.now() - t);
    }
  } finally {
    server.close();
  }
  return samples;
}

async function main(): Promise<void> {
  const floor = stats(await bareSpawnServer(RUNS));
  const h = await startHearth({ extraArgs: ['--log-level', 'warn'] });
  try {
    const client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
    const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '10m' } } as never) as Record<string, any>;
    const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
    const gateway = new Runtime({ token, baseUrl: h.runtime });
    const raw = await client.workspaces.apiAccess.rawToken(ws.id) as { token: string; ip: string; port: number };
    const direct = new Runtime({ token: raw.token, baseUrl: `http://${raw.ip}:${raw.port}` });
    const viaGateway: number[] = [];
    const viaAgent: number[] = [];
    for (let i = 0; i < RUNS + 10; i++) {
      let t = performance.now();
      await gateway.exec.run(['true']);
      if (i >= 10) viaGateway.push(performance.now() - t);
      t = performance.now();
      await direct.exec.run(['true']);
      if (i >= 10) viaAgent.push(performance.now() - t);
    }
    await client.workspaces.delete(ws.id);
    const g = stats(viaGateway);
    const a = stats(viaAgent);
    process.stdout.write(JSON.stringify({
      bench: 'exec', driver: 'container', image: 'debian-12', runs: RUNS, cpus: os.cpus().length, unit: 'ms',
      floor_bare_node_spawn_server: floor,
      exec_roundtrip_gateway: g,
      exec_roundtrip_direct_agent: a,
      ratios: {
        gateway_p50_to_floor_p50: Math.round((g.p50 / floor.p50) * 100) / 100,
        direct_p50_to_floor_p50: Math.round((a.p50 / floor.p50) * 100) / 100,
        gateway_hop_p50_ms: Math.round((g.p50 - a.p50) * 10) / 10,
      },
      targets: { gateway_p50_ratio: 1.2 },
    }, null, 2) + '\n');
  } finally {
    await h.stop();
  }
}

if (inOwnNetns(script)) await main();
