/**
 * The guest launcher: PID 2 of every microVM (under tini), run by the agent
 * drive's own Node. Bundled by bundleLauncher (src/host/drivers/microvm/boot-media/artifacts.ts,
 * entry LAUNCHER_ENTRY in ../bundle.ts) into `vm/launch.mjs` on the VM agent
 * disk; it lives beside the agent because it is guest code that imports only
 * the agent and core/. It runs the same agent code as the
 * container driver (`startAgent` from src/agent/server.ts), only the way it
 * gets its configuration differs:
 *
 *   1. open the `org.hearth.identity` virtio serial port and keep it open
 *      (one opener at a time: user processes can never read it);
 *   2. say {"t":"waiting"} — a template is snapshotted in exactly this
 *      state: Node loaded, the agent's modules imported, no identity;
 *   3. on {"t":"identity"}: set MAC, address, route (busybox ip: the cloud
 *      kernel has no IP_PNP), hostname, /etc/hosts, resolv.conf, the clock
 *      and fresh randomness (credited, with a CRNG reseed: clones of one
 *      template share their kernel's RNG state); then start the agent on the VM's IP with the
 *      secret — or, if one runs with another identity (a fork), close it
 *      and start a new one;
 *   4. say {"t":"applied"}; on {"t":"shutdown"}: stop the agent, SIGTERM
 *      everything, sync, power off.
 *
 * The secret lives only in this process's memory: never in the
 * environment, the command line or a file.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { startAgent, type RunningAgent } from '../server.ts';
import { enterWorkdir } from '../config.ts';
import { WORKSPACE_LOG_DIR, WORKSPACE_STATE_DIR } from '../workloads/paths.ts';
import { IDENTITY_PORT_NAME, RESEED_EXIT_REASONS, netmaskOf, validIdentity, type ReceivedIdentity } from '../../core/vm-identity.ts';

const run = promisify(execFile);
const BUSYBOX = '/.hearth/vm/busybox';
const RESEED = '/.hearth/vm/reseed';

/** What the host sends (src/host/drivers/microvm/identity.ts). */
type Identity = ReceivedIdentity;

function log(msg: string, fields?: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), src: 'hearth-vm', msg, ...fields })}\n`);
}

function findPort(): string {
  for (const name of fs.readdirSync('/sys/class/virtio-ports')) {
    const label = fs.readFileSync(`/sys/class/virtio-ports/${name}/name`, 'utf8').trim();
    if (label === IDENTITY_PORT_NAME) return `/dev/${name}`;
  }
  throw new Error(`no virtio serial port named ${IDENTITY_PORT_NAME}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Port {
  private buf = '';
  constructor(private readonly fd: number) {}

  write(msg: object): Promise<void> {
    return new Promise((resolve) => fs.write(this.fd, `${JSON.stringify(msg)}\n`, (e) => {
      if (e) log('identity port write failed', { error: e.message });
      resolve();
    }));
  }

  /** Next JSON line. A read of 0 bytes means the host end is not connected (yet): poll. */
  async next(): Promise<Record<string, unknown>> {
    const chunk = Buffer.alloc(65536);
    while (true) {
      const i = this.buf.indexOf('\n');
      if (i >= 0) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (!line) continue;
        try {
          return JSON.parse(line) as Record<string, unknown>;
        } catch {
          log('ignoring a malformed identity line');
          continue;
        }
      }
      const n = await new Promise<number>((resolve) => fs.read(this.fd, chunk, 0, chunk.length, null, (e, bytes) => resolve(e ? 0 : bytes)));
      if (n === 0) await sleep(5);
      else this.buf += chunk.subarray(0, n).toString('utf8');
    }
  }
}

/**
 * Every busybox applet here is a fork+exec, which costs tens of ms under
 * TCG: one command per step, lo is already up (initramfs), and the old
 * address is flushed only when an identity replaces another (a fork).
 */
async function applyNetwork(id: Identity, replacing: boolean): Promise<void> {
  const script = [
    'set -e',
    `B=${BUSYBOX}`,
    // No IPv6 address generation on eth0 (as containers: the bridge is IPv4-only).
    'echo 1 > /proc/sys/net/ipv6/conf/eth0/addr_gen_mode 2>/dev/null || true',
    ...(replacing ? ['$B ip addr flush dev eth0'] : []),
    // MAC, address and link state in one applet (ip needs two).
    `$B ifconfig eth0 hw ether ${id.mac} ${id.ip} netmask ${netmaskOf(id.prefix)} up`,
    `$B ip route replace default via ${id.gateway} dev eth0`,
    `$B date -s @${Math.floor(id.now / 1000)} >/dev/null`,
    // Tell the bridge and the host who has this address now (a restored template had another identity;
    // a host neighbour entry may have gone FAILED while the VM was down). Not waited for.
    `$B arping -U -c 2 -I eth0 ${id.ip} </dev/null >/dev/null 2>&1 &`,
  ].join('\n');
  await run(BUSYBOX, ['sh', '-c', script]);
}

/**
 * Credit the host's seed and reseed the CRNG (the reseed helper, since Node
 * has no ioctl). The seed goes over stdin: never on a command line another
 * process could read. If the helper fails, the seed is still mixed in
 * (uncredited) and the failure logged: the kernel then reseeds only on its
 * own schedule, which is what a VM without the helper would get.
 */
async function reseed(id: Identity): Promise<void> {
  const seed = Buffer.from(id.seed, 'base64');
  const code = await new Promise<number>((resolve) => {
    const child = spawn(RESEED, [], { stdio: ['pipe', 'ignore', 'ignore'] });
    child.on('error', () => resolve(-1));
    child.on('close', (c) => resolve(c ?? -1));
    child.stdin.on('error', () => undefined);
    child.stdin.end(seed);
  });
  if (code === 0) return log('entropy credited and CRNG reseeded', { bytes: seed.length });
  fs.writeFileSync('/dev/urandom', seed);
  log('reseeding the CRNG failed; the seed was mixed in uncredited', { exit_code: code, reason: RESEED_EXIT_REASONS[code] ?? 'the helper did not run' });
}

function applyHost(id: Identity): void {
  fs.writeFileSync('/proc/sys/kernel/hostname', id.hostname);
  const w = (file: string, text: string) => {
    try {
      fs.writeFileSync(file, text);
    } catch (e) {
      log(`cannot write ${file}`, { error: (e as Error).message });
    }
  };
  w('/etc/hostname', `${id.hostname}\n`);
  w('/etc/hosts', `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${id.ip}\t${id.hostname}\n`);
  w('/etc/resolv.conf', id.nameservers.map((n) => `nameserver ${n}\n`).join(''));
  // What user processes inherit: the image's environment, never ours.
  for (const k of Object.keys(process.env)) delete process.env[k];
  for (const e of id.env) {
    const i = e.indexOf('=');
    if (i > 0 && !e.startsWith('HEARTH_')) process.env[e.slice(0, i)] = e.slice(i + 1);
  }
  if (!process.env.PATH) process.env.PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  enterWorkdir(typeof id.workdir === 'string' ? id.workdir : undefined, log);
}

async function shutdown(agent: RunningAgent | null): Promise<never> {
  log('shutting down');
  await agent?.close().catch(() => undefined);
  // sync first: if the host's stop timeout runs out during the grace second, what was written is kept.
  await run(BUSYBOX, ['sh', '-c', `${BUSYBOX} sync; ${BUSYBOX} kill -TERM -1; ${BUSYBOX} sleep 1; ${BUSYBOX} sync; ${BUSYBOX} poweroff -f`]).catch(() => undefined);
  process.exit(0);
}

async function main(): Promise<void> {
  process.on('uncaughtException', (err) => log('uncaught exception', { error: String(err?.stack ?? err) }));
  process.on('unhandledRejection', (err) => log('unhandled rejection', { error: String((err as Error)?.stack ?? err) }));
  process.on('SIGTERM', () => undefined); // tini forwards signals; only the host decides when the VM ends

  let port: Port | null = null;
  for (let i = 0; !port; i++) {
    try {
      port = new Port(fs.openSync(findPort(), 'r+'));
    } catch (e) {
      if (i > 500) throw e;
      await sleep(10);
    }
  }
  // Boot-time page cache (the initramfs, module and image reads) is of no use to the workspace and would
  // bloat a template snapshot: drop it. Free page reporting then hands the freed memory back to the host,
  // which turns it into zero pages that the migration stream encodes in a few bytes each.
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch { /* not fatal */ }
  await port.write({ t: 'waiting' });
  let agent: RunningAgent | null = null;
  let current: Identity | null = null;
  while (true) {
    const msg = await port.next();
    if (msg.t === 'shutdown') await shutdown(agent);
    if (!validIdentity(msg)) {
      await port.write({ t: 'error', message: `unexpected message ${String(msg.t)}` });
      continue;
    }
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    const mark = (name: string, since: number) => { phases[name] = Math.round(performance.now() - since); return performance.now(); };
    try {
      let t = t0;
      // Independent: the network script and the reseed helper are two processes, run side by side.
      await Promise.all([applyNetwork(msg, current !== null), reseed(msg)]);
      t = mark('network', t);
      applyHost(msg);
      t = mark('host', t);
      const same = current && agent && current.secret === msg.secret && current.ip === msg.ip && current.port === msg.port;
      if (!same) {
        await agent?.close().catch(() => undefined);
        // Workload definitions and logs on the workspace's own disk, as in a container: they outlive the VM.
        agent = await startAgent({ secret: msg.secret, port: msg.port, host: msg.ip, workspaceId: msg.workspaceId, log, stateDir: WORKSPACE_STATE_DIR, logDir: WORKSPACE_LOG_DIR });
      }
      mark('agent', t);
      current = msg;
      const ms = Math.round(performance.now() - t0);
      log('identity applied', { workspace_id: msg.workspaceId, ip: msg.ip, ms, phases });
      await port.write({ t: 'applied', ip: msg.ip, ms, phases });
    } catch (e) {
      log('applying the identity failed', { error: (e as Error).message });
      await port.write({ t: 'error', message: (e as Error).message });
    }
  }
}

main().catch((e) => {
  log('launcher failed', { error: String((e as Error)?.stack ?? e) });
  process.exit(1);
});
