/**
 * ContainerDriver against real runc, overlayfs, cgroups v1 and HostNetwork.
 *
 * Hermetic like network-host.test.ts: as root this file re-runs itself inside
 * a fresh network namespace (nsenter --net keeps the host mount namespace so
 * runc finds /sys/fs/cgroup). The image is a busybox-static rootfs built here
 * (two layers, to exercise the lowerdir order), and the agent drive is made
 * from the host's own node, loader and tini-static, running a tiny HTTP agent,
 * so the test needs nothing from `hearth setup`. Every test leaves nothing
 * behind, and `after` asserts it: no mounts, cgroups, runc state, links,
 * namespaces or nft tables.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, statfsSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ContainerDriver, ContainerDriverError, containerId } from '../../src/host/drivers/container/driver.ts';
import { bareRuncRun } from '../../src/host/drivers/container/floor.ts';
import { mountsUnder } from '../../src/host/drivers/container/mounts.ts';
import type { SandboxSpec } from '../../src/host/drivers/driver.ts';
import { resolveImage } from '../../src/host/images/store.ts';
import type { ResolvedImage } from '../../src/host/images/types.ts';
import { HostNetwork } from '../../src/host/network/host-network.ts';
import { tableName } from '../../src/host/network/nft.ts';
import { slotFor } from '../../src/host/network/slot.ts';

const NS_ENV = 'HEARTH_TEST_NETNS';
const isRoot = process.getuid?.() === 0;
const hasRunc = spawnSync('runc', ['--version']).status === 0;

if (isRoot && hasRunc && !process.env[NS_ENV]) {
  const ns = `hth-test-${randomBytes(4).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  let code = 1;
  try {
    const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, process.execPath, ...process.execArgv, fileURLToPath(import.meta.url)], {
      stdio: 'inherit', env: { ...process.env, [NS_ENV]: ns },
    });
    code = r.status ?? 1;
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
  if (existsSync(`/run/netns/${ns}`)) {
    console.error(`leak: /run/netns/${ns} still exists`);
    code = 1;
  }
  process.exit(code);
}

/** The real python-3.11 image and the newest real agent drive, when `hearth setup` has built them. */
async function realArtifacts(): Promise<{ image: ResolvedImage; drive: string } | string> {
  const image = await resolveImage('python-3.11').catch((e: Error) => e);
  if (image instanceof Error) return `python-3.11 image not built (${image.message}): run \`hearth setup\``;
  const agentRoot = '/var/lib/hearth/artifacts/agent';
  const drives = existsSync(agentRoot)
    ? readdirSync(agentRoot).map((d) => join(agentRoot, d)).filter((d) => existsSync(join(d, 'agent.mjs')) && existsSync(join(d, 'bin/node')))
    : [];
  drives.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!drives[0]) return 'no agent drive built: run `hearth setup`';
  return { image, drive: drives[0] };
}
const real = await realArtifacts();

const skip = !isRoot ? 'needs root (namespaces, cgroups, overlay mounts)' : !hasRunc ? 'runc is not installed (apt-get install runc)' : false;

/** A rootfs from busybox-static: every applet a symlink in /bin. */
function busyboxLayer(dir: string): void {
  for (const d of ['bin', 'etc', 'tmp', 'root', 'proc', 'sys', 'dev', 'mnt', 'var']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync('/usr/bin/busybox', join(dir, 'bin/busybox'));
  execFileSync('chmod', ['755', join(dir, 'bin/busybox')]);
  const applets = execFileSync('busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
}

function place(src: string, dest: string): void {
  try {
    linkSync(src, dest); // same filesystem: no 99 MB copy
  } catch {
    copyFileSync(src, dest);
  }
}

const TEST_AGENT = `
import http from 'node:http';
import os from 'node:os';
const secret = process.env.HEARTH_AGENT_SECRET;
http.createServer((req, res) => {
  if (req.headers['x-hearth-secret'] !== secret) { res.writeHead(401); res.end(); return; }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ hostname: os.hostname(), workspace: process.env.HEARTH_WORKSPACE_ID, pid: process.pid }));
}).listen(Number(process.env.HEARTH_AGENT_PORT), '0.0.0.0');
`;

/** An agent drive (AgentDrive layout) from the host's node, its loader and libraries, and tini-static. */
function testAgentDrive(dir: string): void {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'lib'), { recursive: true });
  place(realpathSync(process.execPath), join(dir, 'bin/node'));
  place('/usr/bin/tini-static', join(dir, 'bin/tini'));
  const ldd = execFileSync('ldd', [process.execPath], { encoding: 'utf8' });
  for (const m of ldd.matchAll(/(\/\S+\.so[.\d]*)/g)) {
    const lib = m[1]!;
    const name = /ld-linux/.test(lib) ? 'ld-linux-x86-64.so.2' : basename(lib);
    if (!existsSync(join(dir, 'lib', name))) place(realpathSync(lib), join(dir, 'lib', name));
  }
  writeFileSync(join(dir, 'agent.mjs'), TEST_AGENT);
}

function httpGet(ip: string, port: number, secret: string, timeoutMs = 1000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = { 'x-hearth-secret': secret, authorization: `Bearer ${secret}` };
    const req = request({ host: ip, port, path: '/health', headers, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Poll, don't sleep: until `cond` holds or the deadline passes (then say what was last seen). */
async function waitUntil<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (ok(v)) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; last saw: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
}

// A skipped test (not a skipped suite) so runners count it as skipped, with the reason.
if (skip) test('ContainerDriver (root, runc, own netns)', { skip }, () => undefined);
else describe('ContainerDriver (root, runc, own netns)', () => {
  const rand = randomBytes(3).toString('hex');
  const base = mkdtempSync(join(tmpdir(), 'hearth-ctr-'));
  const plan = { bridge: `hb${rand}`, subnet: '10.98.0.0/24', linkPrefix: `hc${rand.slice(0, 4)}` };
  const runDir = join(base, 'run');
  const workspacesRoot = join(base, 'workspaces');
  const instance = `test-${rand}`;
  const network = new HostNetwork(plan, runDir);
  const events: string[] = [];
  const CONSOLE_CAP = 1024 * 1024;
  const driver = new ContainerDriver({
    network, runDir, workspacesRoot, instance, nameservers: ['192.0.2.53'], consoleLogCapBytes: CONSOLE_CAP,
    trace: (e) => events.push(`${e.op}.${e.phase}=${e.ms.toFixed(0)}`),
  });
  const phases = () => events.splice(0).join(' ');
  const layerBase = join(base, 'layers/busybox');
  const layerTop = join(base, 'layers/top');
  const drive = join(base, 'agent');
  let consoleOnFailure = '';

  function makeSpec(n: number, over: Partial<SandboxSpec> = {}): SandboxSpec {
    const workspaceId = `ws_${rand}${n}`;
    return {
      workspaceId, generation: 1, hostname: `box-${rand}-${n}`,
      image: { id: 'busybox', ref: 'test/busybox', layers: [layerTop, layerBase], env: ['PATH=/bin', 'IMAGE_VAR=1'], workingDir: '/', user: 'root', digest: 'sha256:test' },
      agent: { dir: drive, hash: 'test' },
      agentSecret: `secret-${rand}`, agentPort: 7070, cpus: 1, memoryMb: 128, diskSizeMb: 1024, pidsLimit: 64,
      slot: slotFor(plan, n), dir: join(workspacesRoot, workspaceId),
      ...over,
    };
  }
  const spec = makeSpec(0);
  const id = containerId(spec.workspaceId);

  function rexec(s: SandboxSpec, script: string): { code: number; out: string } {
    const r = spawnSync('runc', ['--root', driver.runc.root, 'exec', containerId(s.workspaceId), '/bin/sh', '-c', script], { encoding: 'utf8', timeout: 20_000 });
    return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
  }
  const agent = (s: SandboxSpec) => httpGet(s.slot.ip, s.agentPort, s.agentSecret);
  const agentUp = (s: SandboxSpec) => waitUntil('the agent to answer', () => agent(s), (r) => r.status === 200, 15_000);

  /** Loop devices whose backing file lies under `dir` (a leaked disk image). */
  const loopsUnder = (dir: string) => execFileSync('losetup', ['-a', '-O', 'NAME,BACK-FILE', '-n', '-l'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(dir));

  async function assertNoTrace(s: SandboxSpec, opts: { dirGone: boolean }): Promise<void> {
    assert.deepEqual(await mountsUnder(s.dir), [], 'no mount under the workspace dir');
    assert.deepEqual(loopsUnder(s.dir), [], 'no loop device on the workspace disk');
    for (const d of await driver.cgroupDirs(s.workspaceId)) assert.ok(!existsSync(d), `cgroup ${d} removed`);
    assert.ok(!existsSync(join(driver.runc.root, containerId(s.workspaceId))), 'no runc state');
    assert.ok(!existsSync(`/run/netns/${s.slot.hostIf}`), 'no netns');
    assert.ok(!(JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).some((l) => l.ifname === s.slot.hostIf), 'no veth');
    if (opts.dirGone) assert.ok(!existsSync(s.dir), 'workspace dir removed');
  }

  before(async () => {
    assert.ok(process.env[NS_ENV], 'must run inside the test netns');
    mkdirSync(layerBase, { recursive: true });
    busyboxLayer(layerBase);
    mkdirSync(join(layerTop, 'etc'), { recursive: true });
    writeFileSync(join(layerTop, 'etc/motd'), 'top layer wins\n');
    mkdirSync(join(layerBase, 'etc'), { recursive: true });
    writeFileSync(join(layerBase, 'etc/motd'), 'base layer\n');
    testAgentDrive(drive);
    mkdirSync(workspacesRoot, { recursive: true });
    await network.ensure();
  });

  after(async () => {
    for (const n of [0, 1, 2, 3, 4]) await driver.destroy(makeSpec(n)).catch(() => undefined);
    const cgLeft = await driver.teardown();
    await network.teardown();
    rmSync(base, { recursive: true, force: true });
    if (consoleOnFailure) console.error(consoleOnFailure);
    assert.deepEqual(cgLeft, [], 'no /hearth/<instance> cgroups left');
    assert.deepEqual(await driver.list(), []);
    assert.deepEqual(await mountsUnder(base), []);
    assert.deepEqual(loopsUnder(base), [], 'no loop device left');
    assert.deepEqual(readdirSync('/run/netns').filter((n) => n.startsWith(plan.linkPrefix)), []);
    assert.doesNotMatch(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }), new RegExp(tableName(plan)));
  });

  it('probe: runc, cgroups and overlay are usable', async () => {
    const caps = await driver.probe();
    assert.equal(caps.available, true, caps.reason);
  });

  it('run: starts the agent on its own IP with the right hostname, quickly', async (t) => {
    const t0 = performance.now();
    await driver.run(spec);
    const runMs = performance.now() - t0;
    const r = await agentUp(spec).catch((e: Error) => {
      consoleOnFailure = readFileSync(join(spec.dir, 'disk/console.log'), 'utf8');
      throw e;
    });
    const readyMs = performance.now() - t0;
    t.diagnostic(`run ms: ${runMs.toFixed(1)} (${phases()}); agent answering after ${readyMs.toFixed(1)} ms`);
    const body = JSON.parse(r.body) as { hostname: string; workspace: string };
    assert.equal(body.hostname, spec.hostname);
    assert.equal(body.workspace, spec.workspaceId);
    assert.equal((await httpGet(spec.slot.ip, spec.agentPort, 'wrong')).status, 401);
    assert.equal(await driver.state(spec), 'running');
    assert.deepEqual(await driver.list(), [spec.workspaceId]);
    await driver.run(spec); // idempotent while running
  });

  it('inside: address, /etc files, layer order, read-only agent drive, env', () => {
    const r = rexec(spec, 'hostname; ip -4 -o addr show dev eth0; cat /etc/hosts /etc/resolv.conf /etc/motd; touch /.hearth/x 2>&1; echo "$IMAGE_VAR $HEARTH_WORKSPACE_ID"; pwd');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`^${spec.hostname}$`, 'm'));
    assert.match(r.out, new RegExp(`inet ${spec.slot.ip.replace(/\./g, '\\.')}/24`));
    assert.match(r.out, new RegExp(`${spec.slot.ip.replace(/\./g, '\\.')}\\t${spec.hostname}`));
    assert.match(r.out, /nameserver 192\.0\.2\.53/);
    assert.match(r.out, /top layer wins/);
    assert.match(r.out, /Read-only file system/);
    assert.match(r.out, new RegExp(`^1 ${spec.workspaceId}$`, 'm'));
  });

  it('security: seccomp filter, no new privileges, Docker capabilities, masked /proc', () => {
    const status = rexec(spec, 'grep -E "^(Seccomp|NoNewPrivs|CapEff|CapInh|CapAmb):" /proc/self/status');
    assert.match(status.out, /Seccomp:\s+2/);
    assert.match(status.out, /NoNewPrivs:\s+1/);
    assert.match(status.out, /CapEff:\s+00000000a80425fb/); // Docker's default set
    assert.match(status.out, /CapInh:\s+0000000000000000/);
    const userns = rexec(spec, 'unshare -U true');
    assert.notEqual(userns.code, 0);
    assert.match(userns.out, /Operation not permitted/);
    const mount = rexec(spec, 'mount -t tmpfs none /mnt');
    assert.notEqual(mount.code, 0);
    assert.match(mount.out, /Operation not permitted|permission denied/i);
    // Masked paths read as empty inside (test the ones this kernel has).
    for (const p of ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug'].filter((f) => existsSync(f))) {
      assert.match(rexec(spec, `wc -c < ${p}`).out.trim(), /^0$/, `${p} masked`);
    }
    const sysrq = rexec(spec, 'echo h > /proc/sysrq-trigger');
    assert.notEqual(sysrq.code, 0);
  });

  it('memory limit: an allocation past memory_mb is OOM-killed, init survives', async () => {
    const r = rexec(spec, 'dd if=/dev/zero of=/dev/null bs=200M count=1');
    assert.equal(r.code, 137, `dd should be SIGKILLed by the OOM killer: ${r.out}`);
    const [memDir] = (await driver.cgroupDirs(spec.workspaceId)).filter((d) => d.includes('/memory/'));
    assert.ok(memDir);
    assert.match(readFileSync(join(memDir, 'memory.oom_control'), 'utf8'), /oom_kill [1-9]/);
    assert.equal(await driver.state(spec), 'running');
    assert.equal((await agent(spec)).status, 200);
    const st = await driver.stats(spec);
    assert.ok(st);
    assert.equal(st.memoryLimitBytes, 128 * 1024 * 1024);
    assert.ok(st.cpuUsageNs > 0 && st.memoryBytes > 0 && st.pids >= 2, JSON.stringify(st));
  });

  it('writes land in the upper dir and survive stop/start', async (t) => {
    assert.equal(rexec(spec, 'echo kept > /root/persist.txt && rm /etc/motd').code, 0);
    assert.equal(readFileSync(join(spec.dir, 'disk/upper/root/persist.txt'), 'utf8'), 'kept\n');
    const t0 = performance.now();
    await driver.stop(spec);
    t.diagnostic(`stop ms: ${(performance.now() - t0).toFixed(1)} (${phases()})`);
    await driver.stop(spec); // idempotent
    assert.equal(await driver.state(spec), 'stopped');
    await assertNoTrace(spec, { dirGone: false });
    const t1 = performance.now();
    await driver.run(spec);
    t.diagnostic(`second run ms: ${(performance.now() - t1).toFixed(1)} (${phases()})`);
    await agentUp(spec);
    const r = rexec(spec, 'cat /root/persist.txt; ls /etc/motd 2>&1');
    assert.match(r.out, /^kept$/m);
    assert.match(r.out, /No such file/);
  });

  it('pause and resume; stop works on a paused workspace', async () => {
    await driver.pause(spec);
    assert.equal(await driver.state(spec), 'paused');
    await assert.rejects(httpGet(spec.slot.ip, spec.agentPort, spec.agentSecret, 300));
    await driver.resume(spec);
    assert.equal(await driver.state(spec), 'running');
    assert.equal((await agent(spec)).status, 200);
    await driver.pause(spec);
    await driver.stop(spec);
    assert.equal(await driver.state(spec), 'stopped');
    await assertNoTrace(spec, { dirGone: false });
  });

  it('pids limit: a fork bomb hits the limit, the host and the agent survive', async () => {
    await driver.run(spec);
    await agentUp(spec);
    const [pidsDir] = (await driver.cgroupDirs(spec.workspaceId)).filter((d) => d.includes('/pids/'));
    assert.ok(pidsDir);
    assert.match(readFileSync(join(pidsDir, 'pids.max'), 'utf8'), new RegExp(`^${spec.pidsLimit}$`, 'm'));
    const bomb = spawnSync('runc', ['--root', driver.runc.root, 'exec', '-d', id, '/bin/sh', '-c', 'b() { b | b & }; b'], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(bomb.status, 0, bomb.stderr);
    await waitUntil('a fork to be refused at the limit', async () => readFileSync(join(pidsDir, 'pids.events'), 'utf8'), (t) => /max [1-9]/.test(t));
    const st = await driver.stats(spec);
    assert.ok(st && st.pids <= spec.pidsLimit, `pids ${st?.pids} <= ${spec.pidsLimit}`);
    assert.equal((await httpGet(spec.slot.ip, spec.agentPort, spec.agentSecret, 5000)).status, 200, 'the agent still answers');
    await driver.stop(spec); // killing init empties the pid namespace, bomb included
    await assertNoTrace(spec, { dirGone: false });
  });

  it('two workspaces at once: isolated from each other', async () => {
    const other = makeSpec(1);
    await Promise.all([driver.run(spec), driver.run(other)]);
    await Promise.all([agentUp(spec), agentUp(other)]);
    const r = rexec(spec, `wget -q -T 1 -O - http://${other.slot.ip}:${other.agentPort}/ 2>&1; ping -c 1 -W 1 ${other.slot.ip} 2>&1`);
    assert.doesNotMatch(r.out, /hostname/);
    assert.match(r.out, /100% packet loss|timed out|Network is unreachable|No route/);
    assert.deepEqual(await driver.list(), [spec.workspaceId, other.workspaceId].sort());
    await Promise.all([driver.destroy(other), driver.stop(spec)]);
    await assertNoTrace(other, { dirGone: true });
  });

  it('disk_size_mb is enforced by the kernel: ENOSPC inside, df shows it, the host grows by at most the limit; it grows online', async (t) => {
    const s = makeSpec(2, { diskSizeMb: 256 });
    await driver.run(s);
    await agentUp(s);
    const dfTotalMb = () => {
      const r = rexec(s, 'df -k / | tail -n 1');
      return Number(r.out.trim().split(/\s+/)[1]) / 1024;
    };
    const total = dfTotalMb();
    t.diagnostic(`df / inside: ${total.toFixed(0)} MiB for disk_size_mb 256`);
    assert.ok(total > 200 && total <= 256, `df / shows about the limit: ${total} MiB`);
    const hostUsed = () => { const f = statfsSync(base); return (f.blocks - f.bfree) * f.bsize; };
    const before = hostUsed();
    const dd = rexec(s, 'dd if=/dev/zero of=/root/big bs=1M count=600 2>&1; sync');
    assert.match(dd.out, /No space left on device/, dd.out);
    const grew = hostUsed() - before;
    const img = statSync(join(s.dir, 'disk.img'));
    t.diagnostic(`host file system grew by ${(grew / 1048576).toFixed(0)} MiB; image allocates ${(img.blocks * 512 / 1048576).toFixed(0)} MiB`);
    assert.ok(img.blocks * 512 <= 257 * 1048576, 'the image holds at most the limit');
    assert.ok(grew <= 300 * 1048576, `the host grew by at most about the limit (${grew} bytes)`);
    assert.equal((await agent(s)).status, 200, 'the agent survives a full disk');
    // Grow it while running: ext4 grows online where the host allows it (CAP_SYS_RESOURCE), else at the next start.
    const bigger = { ...s, diskSizeMb: 512 };
    const how = await driver.resizeDisk(bigger);
    t.diagnostic(`resize while running: ${how}`);
    assert.ok(how === 'grown' || how === 'next-start', how);
    if (how === 'grown') assert.ok(dfTotalMb() > 450, 'grown online');
    // Stop and start keep the data; the disk is unmounted while stopped, and a pending growth is done offline.
    await driver.stop(s);
    await assertNoTrace(s, { dirGone: false });
    await driver.run(bigger);
    const grown = dfTotalMb();
    assert.ok(grown > 450 && grown <= 512, `df / after growing to 512: ${grown} MiB`);
    assert.equal(rexec(s, 'rm /root/big; dd if=/dev/zero of=/root/more bs=1M count=400 2>&1').code, 0, 'room after growing');
    assert.equal(await driver.resizeDisk(bigger), 'unchanged');
    // A stopped workspace grows at its next start.
    await driver.stop(s);
    assert.equal(await driver.resizeDisk({ ...s, diskSizeMb: 768 }), 'next-start');
    await driver.run({ ...s, diskSizeMb: 768 });
    const third = dfTotalMb();
    assert.ok(third > 700 && third <= 768, `df / after growing a stopped disk to 768: ${third} MiB`);
    assert.match(rexec(s, 'ls -l /root/more').out, /419430400/);
    await driver.destroy(s);
    await assertNoTrace(s, { dirGone: true });
  });

  it('console log spam through /proc/1/fd/1 fills at most its own disk and is cut back under the cap', async (t) => {
    const s = makeSpec(2, { diskSizeMb: 256 });
    await driver.run(s);
    await agentUp(s);
    const log = join(s.dir, 'disk/console.log');
    const hostUsed = () => { const f = statfsSync(base); return (f.blocks - f.bfree) * f.bsize; };
    const before = hostUsed();
    let max = 0;
    let hostMax = 0;
    const sampler = setInterval(() => {
      // Allocated bytes: a writer that opened /proc/1/fd/1 itself (no O_APPEND) keeps its offset past a
      // truncation, so the apparent size can pass the disk's while the blocks cannot.
      max = Math.max(max, (statSync(log, { throwIfNoEntry: false })?.blocks ?? 0) * 512);
      hostMax = Math.max(hostMax, hostUsed() - before);
    }, 5);
    // Asynchronously, so the driver's watcher (in this process) runs while the workspace spams.
    const r = await new Promise<{ out: string }>((res) => {
      const c = spawn('runc', ['--root', driver.runc.root, 'exec', containerId(s.workspaceId), '/bin/sh', '-c', 'timeout 3 yes spam > /proc/1/fd/1; true'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout.on('data', (b: Buffer) => (out += b.toString()));
      c.stderr.on('data', (b: Buffer) => (out += b.toString()));
      c.on('close', () => res({ out }));
    });
    clearInterval(sampler);
    const size = await waitUntil('the console log to be cut back', async () => statSync(log).blocks * 512, (n) => n <= CONSOLE_CAP);
    const prev = statSync(`${log}.1`, { throwIfNoEntry: false })?.size ?? 0;
    t.diagnostic(`console.log ${size} bytes allocated, .1 ${prev} bytes, largest allocation seen ${max} bytes (cap ${CONSOLE_CAP}); host fs grew by at most ${(hostMax / 1048576).toFixed(0)} MiB; ${r.out.trim()}`);
    assert.ok(prev <= CONSOLE_CAP, `console.log.1 ${prev} <= cap`);
    assert.ok(prev > 0, 'it was rotated');
    assert.ok(max <= 256 * 1048576, `never larger than the workspace's disk (largest ${max})`);
    assert.ok(hostMax <= 300 * 1048576, `the host file system grew by at most about the disk size (${hostMax})`);
    assert.equal((await agent(s)).status, 200);
    assert.equal(rexec(s, 'echo ok > /root/after-spam && cat /root/after-spam').out.trim(), 'ok', 'the disk has room again');
    // Stopped, its tail is readable next to the disk.
    await driver.stop(s);
    const kept = statSync(join(s.dir, 'console.log'));
    assert.ok(kept.size <= CONSOLE_CAP, `the kept tail ${kept.size} <= cap`);
    await driver.destroy(s);
    await assertNoTrace(s, { dirGone: true });
  });

  it('destroy leaves nothing, twice', async () => {
    await driver.run(spec);
    await driver.destroy(spec);
    await driver.destroy(spec);
    await assertNoTrace(spec, { dirGone: true });
    assert.equal(await driver.state(spec), 'missing');
  });

  it('a failed run unwinds: bad image layer (disk) and bad agent drive (runc)', async () => {
    const badLayer = makeSpec(2, { image: { ...spec.image, layers: [join(base, 'no-such-layer')] } });
    await assert.rejects(driver.run(badLayer), (e: unknown) => e instanceof ContainerDriverError && e.stage === 'disk');
    await assertNoTrace(badLayer, { dirGone: false });
    const badDrive = makeSpec(3, { agent: { dir: join(base, 'no-such-drive'), hash: 'x' } });
    await assert.rejects(driver.run(badDrive), (e: unknown) => e instanceof ContainerDriverError && e.stage === 'vmm' && /no-such-drive|no such file/i.test(e.message));
    await assertNoTrace(badDrive, { dirGone: false });
    await driver.destroy(badLayer);
    await driver.destroy(badDrive);
  });

  it('destroy refuses a directory outside the workspaces root', async () => {
    const outside = makeSpec(2, { dir: join(base, 'layers') });
    await assert.rejects(driver.destroy(outside), /not inside the workspaces root/);
    assert.ok(existsSync(layerBase));
  });

  it('real artifacts: the python-3.11 image with the real agent drive', { skip: typeof real === 'string' ? real : false }, async (t) => {
    if (typeof real === 'string') return;
    const s = makeSpec(4, { image: real.image, agent: { dir: real.drive, hash: 'real' }, memoryMb: 512 });
    phases(); // drop earlier events
    const t0 = performance.now();
    await driver.run(s);
    const runMs = performance.now() - t0;
    await waitUntil('the real agent to answer /health', () => agent(s), (r) => r.status === 200, 20_000).catch((e: Error) => {
      consoleOnFailure = readFileSync(join(s.dir, 'disk/console.log'), 'utf8');
      throw e;
    });
    t.diagnostic(`real image run ms: ${runMs.toFixed(1)} (${phases()}); agent /health after ${(performance.now() - t0).toFixed(1)} ms`);
    const r = rexec(s, `python3 -c "import socket,sys; print(socket.gethostname(), sys.version_info[:2])"; cat /etc/debian_version`);
    assert.match(r.out, new RegExp(`^${s.hostname} \\(3, 11\\)$`, 'm'));
    await driver.destroy(s);
    await assertNoTrace(s, { dirGone: true });
  });

  it('floor: a bare runc run of the same rootfs', async (t) => {
    const { ms } = await bareRuncRun({ rootfs: layerBase });
    t.diagnostic(`bare runc run ms: ${ms.toFixed(1)}`);
  });
});
