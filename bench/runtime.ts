/**
 * The runtime data plane, measured end to end with the official SDK against
 * a real `hearth serve` and a container workspace, in a network namespace of
 * its own (bench/netns.ts):
 *  - request round trips through the gateway and directly to the agent (raw
 *    token on the internal IP): GET /health (the HTTP path alone) and
 *    exec.run(['true']) (plus a process), beside the floor of a bare
 *    child_process.spawn of /bin/true on the host;
 *  - terminal keystroke echo over the runtime WebSocket (bash, one key at a
 *    time until its echo comes back), gateway and direct;
 *  - a 100 MB file written and read back through transfer upload and
 *    download: plain tar, and the SDK's tar.gz, beside the floor of one
 *    loopback TCP copy.
 * Prints JSON. Usage: node --import tsx bench/runtime.ts [--runs 300] [--mb 100]
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { Oblien, Runtime } from 'oblien';
import * as tar from 'tar';
import WebSocket from 'ws';
import { inOwnNetns, percentiles } from './netns.ts';
import { startHearth } from '../test/helpers/hearth.ts';

const script = fileURLToPath(import.meta.url);
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg('runs', 300);
const MB = arg('mb', 100);

// Node 20 has no global WebSocket; the SDK's rt.ws() needs one.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

async function roundTrips(n: number, fns: Record<string, () => Promise<unknown>>): Promise<Record<string, ReturnType<typeof percentiles>>> {
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(fns).map((k) => [k, []]));
  for (let i = 0; i < Math.min(20, n); i++) for (const f of Object.values(fns)) await f();
  // Interleaved, so both paths see the same machine load.
  for (let i = 0; i < n; i++) {
    for (const [k, f] of Object.entries(fns)) {
      const t = performance.now();
      await f();
      samples[k]!.push(performance.now() - t);
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, s]) => [k, percentiles(s)]));
}

/** Keystroke echo: one byte in, wait for it to come back in the terminal's output. */
async function keystrokeEcho(rt: Runtime, n: number): Promise<ReturnType<typeof percentiles>> {
  const term = await rt.terminal.create({ cmd: ['/bin/bash', '--norc', '--noprofile', '-i'], cols: 120, rows: 40 });
  const id = Number(term.id);
  const sock = rt.ws({ reconnect: false });
  let seen = '';
  let waiter: (() => void) | null = null;
  sock.onTerminalOutput((tid, data) => {
    if (Number(tid) !== id) return;
    seen += Buffer.from(data).toString('latin1');
    waiter?.();
  });
  await new Promise<void>((resolve, reject) => { sock.onOpen(() => resolve()); sock.onError(() => reject(new Error('ws error'))); sock.connect(); });
  const waitFor = (s: string) => new Promise<void>((resolve) => {
    const check = () => { if (seen.includes(s)) { waiter = null; resolve(); } };
    waiter = check;
    check();
  });
  sock.writeTerminalInput(id, 'PS1="$ "; echo READY\n');
  await waitFor('READY\r\n');
  const samples: number[] = [];
  const keys = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; i < n; i++) {
    if (i % 60 === 59) { // keep the line short: clear it (^U) now and then
      sock.writeTerminalInput(id, '\x15');
      await new Promise((r) => setTimeout(r, 20));
    }
    seen = '';
    const k = keys[i % keys.length]!;
    const t = performance.now();
    sock.writeTerminalInput(id, k);
    await waitFor(k);
    samples.push(performance.now() - t);
  }
  sock.close();
  await rt.terminal.close(term.id);
  return percentiles(samples);
}

/** A plain (uncompressed) ustar stream of one file, generated on the fly. */
function tarOf(name: string, file: string, size: number): Readable {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(size.toString(8).padStart(11, '0') + '\0', 124);
  header.write(Math.floor(Date.now() / 1000).toString(8).padStart(11, '0') + '\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0' + '00', 257);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const pad = Buffer.alloc((512 - (size % 512)) % 512 + 1024);
  return Readable.from((async function* () {
    yield header;
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) yield chunk as Buffer;
    yield pad;
  })());
}

/** sha256 of the single file inside a tar stream (plain or gzip), without touching disk. */
async function sha256OfTarEntry(body: ReadableStream<Uint8Array>): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const parser = new tar.Parser({
    onReadEntry: (entry) => {
      if (entry.type !== 'File') { entry.resume(); return; }
      entry.on('data', (d: Buffer) => { hash.update(d); bytes += d.length; });
    },
  });
  const src = Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>);
  await pipeline(src, parser as unknown as NodeJS.WritableStream);
  return { sha256: hash.digest('hex'), bytes };
}

/** MB/s with one decimal. */
const rate = (mb: number, ms: number): number => Math.round((mb / (ms / 1000)) * 10) / 10;

interface Endpoint { base: string; auth: string }
type Client = 'node_http' | 'sdk';

/**
 * Write a 100 MB file (upload of a plain tar) and read it back (download,
 * `compression: 'none'`), verifying SHA-256. Two clients: node:http (what the
 * data plane sustains) and the SDK's fetch (what an SDK user gets; undici and
 * web streams cost client CPU), each through the gateway and straight to the agent.
 */
async function writeRead(client: Client, ep: Endpoint, tarFile: string, size: number, want: string): Promise<{ writeMs: number; readMs: number }> {
  const t0 = performance.now();
  if (client === 'sdk') {
    const rt = new Runtime({ token: ep.auth.slice(7), baseUrl: ep.base });
    await rt.transfer.upload({ body: Readable.toWeb(fs.createReadStream(tarFile, { highWaterMark: 1 << 20 })) as unknown as ReadableStream<Uint8Array>, dest: '/bench' });
  } else {
    await new Promise<void>((resolve, reject) => {
      const url = new URL(`${ep.base}/files/transfer/upload?dest=/bench`);
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'POST', headers: { authorization: ep.auth, 'content-type': 'application/x-tar', 'content-length': fs.statSync(tarFile).size } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`upload: ${res.statusCode}`))));
      });
      req.on('error', reject);
      fs.createReadStream(tarFile, { highWaterMark: 1 << 20 }).pipe(req);
    });
  }
  const t1 = performance.now();
  // The archive is one ustar header (512 bytes), the file, padding: hash the file's bytes as they stream by.
  const hash = createHash('sha256');
  let pos = 0;
  const take = (chunk: Uint8Array) => {
    const from = Math.max(0, 512 - pos);
    const to = Math.min(chunk.length, 512 + size - pos);
    if (to > from) hash.update(chunk.subarray(from, to));
    pos += chunk.length;
  };
  const body = JSON.stringify({ paths: ['/bench/big.bin'], compression: 'none' });
  if (client === 'sdk') {
    const res = await fetch(`${ep.base}/files/transfer/download`, { method: 'POST', headers: { authorization: ep.auth, 'content-type': 'application/json' }, body });
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) take(chunk);
  } else {
    await new Promise<void>((resolve, reject) => {
      const url = new URL(`${ep.base}/files/transfer/download`);
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { authorization: ep.auth, 'content-type': 'application/json' } }, (res) => {
        res.on('data', take);
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end(body);
    });
  }
  const t2 = performance.now();
  if (hash.digest('hex') !== want) throw new Error(`${client} ${ep.base}: the round trip corrupted the file`);
  return { writeMs: t1 - t0, readMs: t2 - t1 };
}

async function fileThroughput(rt: Runtime, gateway: Endpoint, direct: Endpoint, mb: number, rounds: number): Promise<Record<string, unknown>> {
  const size = mb * 1024 * 1024;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-bench-rt-'));
  const file = path.join(dir, 'big.bin');
  const tarFile = path.join(dir, 'big.tar');
  try {
    // Random bytes: nothing to compress, the honest case for throughput.
    const fd = fs.openSync(file, 'w');
    const hash = createHash('sha256');
    for (let off = 0; off < size; off += 1 << 20) {
      const chunk = randomBytes(Math.min(1 << 20, size - off));
      hash.update(chunk);
      fs.writeSync(fd, chunk);
    }
    fs.closeSync(fd);
    const want = hash.digest('hex');
    await pipeline(tarOf('big.bin', file, size), fs.createWriteStream(tarFile));

    const out: Record<string, unknown> = { size_mb: mb, rounds, note: 'write = upload of a plain tar, read = download with compression:none; median and best of the rounds' };
    for (const client of ['node_http', 'sdk'] as const) {
      for (const [name, ep] of [['gateway', gateway], ['direct', direct]] as const) {
        const w: number[] = [];
        const r: number[] = [];
        const both: number[] = [];
        for (let i = 0; i < rounds; i++) {
          const { writeMs, readMs } = await writeRead(client, ep, tarFile, size, want);
          w.push(rate(mb, writeMs));
          r.push(rate(mb, readMs));
          both.push(rate(2 * mb, writeMs + readMs));
        }
        const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
        out[`${client}_${name}`] = {
          write_mb_s: med(w), read_mb_s: med(r), write_read_mb_s: med(both),
          best: { write_mb_s: Math.max(...w), read_mb_s: Math.max(...r), write_read_mb_s: Math.max(...both) },
        };
      }
    }

    // The SDK's defaults end to end: tar.gz both ways (client gzip level 1; the agent gzips downloads at level 1).
    await rt.files.delete({ path: '/bench' });
    const g0 = performance.now();
    const tgz = Readable.from(tar.create({ gzip: { level: 1 }, cwd: dir, portable: true }, ['big.bin']));
    await rt.transfer.upload({ body: Readable.toWeb(tgz) as unknown as ReadableStream<Uint8Array>, dest: '/bench' });
    const g1 = performance.now();
    const got = await sha256OfTarEntry((await rt.transfer.download({ paths: ['/bench/big.bin'] })).body!);
    const g2 = performance.now();
    if (got.sha256 !== want) throw new Error('tar.gz round trip corrupted the file');
    out.sdk_targz_gateway = { write_mb_s: rate(mb, g1 - g0), read_mb_s: rate(mb, g2 - g1), write_read_mb_s: rate(2 * mb, g2 - g0), note: 'gzip of random data is CPU-bound (zlib level 1, one core each side)' };

    // The floor: the same bytes through one loopback TCP hop on this machine, no gateway, no agent, no disk.
    out.floor_loopback_tcp_mb_s = await loopbackFloor(size);
    await rt.files.delete({ path: '/bench' });
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The same floor inside the workspace (its cgroup and namespaces), with the agent drive's own node. */
async function spawnFloorInWorkspace(rt: Runtime, n: number): Promise<ReturnType<typeof percentiles>> {
  const js = `const { spawn } = require('child_process');
    (async () => {
      const s = [];
      for (let i = 0; i < ${n}; i++) {
        const t = performance.now();
        await new Promise((r) => spawn('/bin/true', [], { stdio: 'pipe', detached: true }).on('close', r));
        s.push(performance.now() - t);
      }
      console.log(JSON.stringify(s));
    })();`;
  const r = await rt.exec.run(['/.hearth/lib/ld-linux-x86-64.so.2', '--library-path', '/.hearth/lib', '/.hearth/bin/node', '-e', js], { execMode: 'direct' });
  if (r.exit_code !== 0) throw new Error(`in-workspace spawn floor failed: ${r.stderr}`);
  return percentiles(JSON.parse(r.stdout!) as number[]);
}

/** One loopback TCP stream of `size` bytes (1 MiB writes), as MB/s: what a single copy costs here. */
async function loopbackFloor(size: number): Promise<number> {
  const server = net.createServer((sock) => sock.resume());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const chunk = Buffer.alloc(1 << 20, 1);
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1', async () => {
      for (let sent = 0; sent < size; sent += chunk.length) if (!c.write(chunk)) await new Promise((r) => c.once('drain', r));
      c.end();
    });
    c.on('close', () => resolve());
    c.on('error', reject);
  });
  const ms = performance.now() - t0;
  server.close();
  return rate(size / 1024 / 1024, ms);
}

/** The OS floor of an exec: node's child_process.spawn of /bin/true with pipes, on the host (what the agent does per exec). */
async function spawnFloor(n: number): Promise<ReturnType<typeof percentiles>> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await new Promise<void>((resolve) => spawn('/bin/true', [], { stdio: 'pipe', detached: true }).on('close', () => resolve()));
    samples.push(performance.now() - t);
  }
  return percentiles(samples);
}

async function main(): Promise<void> {
  const h = await startHearth({ extraArgs: ['--log-level', 'warn'] });
  try {
    const client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
    const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '30m', memory_mb: 1024 } } as never) as Record<string, any>;
    const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
    const rt = new Runtime({ token, baseUrl: h.runtime });
    const raw = await client.workspaces.apiAccess.rawToken(ws.id) as { token: string; ip: string; port: number };
    const direct = new Runtime({ token: raw.token, baseUrl: `http://${raw.ip}:${raw.port}` });

    const health = await roundTrips(RUNS, { gateway: () => rt.health(), direct: () => direct.health() });
    const agentSide: number[] = [];
    const exec = await roundTrips(RUNS, {
      gateway: async () => {
        const t = await rt.exec.run(['true']);
        agentSide.push(Date.parse(t.exited_at!) - Date.parse(t.created_at));
      },
      direct: () => direct.exec.run(['true']),
    });
    await rt.exec.deleteAll();
    const floor = await spawnFloor(Math.min(RUNS, 100));
    const floorInside = await spawnFloorInWorkspace(rt, Math.min(RUNS, 100));
    const echoGateway = await keystrokeEcho(rt, Math.min(RUNS, 200));
    const echoDirect = await keystrokeEcho(direct, Math.min(RUNS, 200));
    const files = await fileThroughput(rt, { base: h.runtime, auth: `Bearer ${token}` }, { base: `http://${raw.ip}:${raw.port}`, auth: `Bearer ${raw.token}` }, MB, 3);

    const out = {
      bench: 'runtime', driver: 'container', image: 'debian-12', runs: RUNS, cpus: os.cpus().length,
      loadavg_1m: Math.round(os.loadavg()[0]! * 100) / 100, unit: 'ms',
      health_roundtrip: health,
      exec_roundtrip: exec,
      exec_inside_agent_ms: percentiles(agentSide.slice(-RUNS)),
      floor_spawn_true_host: floor,
      floor_spawn_true_in_workspace: floorInside,
      gateway_overhead_p50_ms: Math.round((health.gateway!.p50 - health.direct!.p50) * 100) / 100,
      terminal_echo: { gateway: echoGateway, direct: echoDirect },
      files,
      targets: { exec_p50_gateway_ms: 5, write_read_mb_s: 200, terminal_echo_p50_ms: 5 },
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    await client.workspaces.delete(ws.id);
  } finally {
    await h.stop();
  }
}

if (inOwnNetns(script)) await main();
