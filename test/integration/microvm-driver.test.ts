/**
 * The microvm driver against real QEMU (TCG here), a real bridge, taps and
 * nftables, inside the test run's network namespace: template boot, guest
 * isolation and secret handling, pause/resume, a snapshot round trip with
 * memory, a crash noticed and recovered, and nothing left after destroy.
 * One VM walks through the cases in order (TCG boots cost seconds).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { VM_UID_BASE, type MicrovmDriver } from '../../src/host/drivers/microvm/index.ts';
import { ensureGuestKernel } from '../../src/host/drivers/microvm/boot-media/kernel.ts';
import type { SandboxSpec } from '../../src/host/drivers/driver.ts';
import { ensureAgentDrive, resolveImage } from '../../src/host/images/index.ts';
import { slotFor, type NetworkPlan } from '../../src/host/network/slot.ts';
import { needsRoot } from '../helpers/root.ts';
import { agentCall, openVmHarness, type VmHarness } from '../helpers/microvm-harness.ts';

let vm: VmHarness | null = null;
let tag = '';
let plan: NetworkPlan;
let tmp: string;
let driver: MicrovmDriver;
let spec: SandboxSpec;
let skipReason: string | false = needsRoot;

const agent = (method: string, p: string, body?: unknown) => agentCall(spec, method, p, body);

async function sh(script: string): Promise<{ stdout: string; exit_code: number }> {
  const r = await agent('POST', '/exec', { cmd: ['sh', '-c', script] });
  return { stdout: String(r.stdout ?? ''), exit_code: Number(r.exit_code) };
}

function qemuProcesses(): string[] {
  return execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`hearth-${spec.workspaceId},`));
}

before(async () => {
  if (skipReason) return;
  const opened = await openVmHarness('v');
  if ('skip' in opened) {
    skipReason = opened.skip;
    return;
  }
  vm = opened;
  ({ tag, plan, tmp, driver } = vm);
  const agentDrive = await ensureAgentDrive({});
  spec = {
    workspaceId: `ws_${tag}`, generation: 1, hostname: 'vm-under-test', image: await resolveImage('debian-12', {}), agent: agentDrive,
    agentSecret: randomBytes(24).toString('hex'), agentPort: 9990, cpus: 1, memoryMb: 512, diskSizeMb: 4096, pidsLimit: 1024,
    slot: slotFor(plan, 7), dir: path.join(tmp, 'workspaces', `ws_${tag}`),
  };
});

after(async () => { await vm?.close(spec ? [spec] : []); });

test('a VM boots, its agent answers on the slot IP, and the guest is its own machine', { skip: skipReason }, async (t) => {
  if (skipReason) return t.skip(String(skipReason));
  await driver.run(spec);
  assert.equal(await driver.state(spec), 'running');
  const kernel = await ensureGuestKernel({ offline: true });
  const r = await sh('uname -r; hostname; grep MemTotal /proc/meminfo; ip -4 addr show eth0 2>/dev/null | grep -c inet || cat /sys/class/net/eth0/address');
  const [release, hostname, mem] = r.stdout.split('\n');
  assert.equal(release, kernel.release, 'the guest runs the Debian cloud kernel');
  assert.notEqual(release, os.release());
  assert.equal(hostname, 'vm-under-test');
  assert.ok(Number(/(\d+)/.exec(mem!)![1]) <= 512 * 1024, mem);
  // QEMU runs unprivileged, in its own cgroup.
  const [pidLine] = qemuProcesses();
  const pid = Number(pidLine!.trim().split(/\s+/)[0]);
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  assert.match(status, new RegExp(`^Uid:\\s+${VM_UID_BASE + 7}\\s`, 'm'), 'QEMU dropped to the slot uid');
  assert.match(await fs.readFile(`/proc/${pid}/cgroup`, 'utf8'), new RegExp(`/hearth/${plan.bridge}/vm-${spec.workspaceId}`));
  const stats = await driver.stats(spec);
  assert.ok(stats && stats.memoryBytes > 64 * 1024 * 1024, `host-side stats come from the VM cgroup: ${JSON.stringify(stats)}`);
});

test('the agent secret reaches no user process, and the identity port is taken', { skip: skipReason }, async (t) => {
  if (skipReason) return t.skip(String(skipReason));
  // The pattern is assembled from two halves into a RAM file, so no command line of this check holds the secret.
  const half = spec.agentSecret.length / 2;
  const leak = await sh(`printf %s%s ${spec.agentSecret.slice(0, half)} ${spec.agentSecret.slice(half)} > /dev/shm/p; grep -lFf /dev/shm/p /proc/cmdline /proc/[0-9]*/environ /proc/[0-9]*/cmdline /etc/* 2>/dev/null; rm /dev/shm/p; echo done`);
  assert.equal(leak.stdout.trim(), 'done', `the secret is visible in: ${leak.stdout}`);
  const port = await sh('for p in /dev/vport*; do cat $p >/dev/null 2>&1 && echo opened $p; done; echo done');
  assert.equal(port.stdout.trim(), 'done', 'a user process cannot open the identity port (the launcher holds it)');
});

test('pause stops the vCPUs, resume continues', { skip: skipReason }, async (t) => {
  if (skipReason) return t.skip(String(skipReason));
  await driver.pause(spec);
  assert.equal(await driver.state(spec), 'paused');
  await assert.rejects(fetch(`http://${spec.slot.ip}:9990/health`, { headers: { authorization: `Bearer ${spec.agentSecret}` }, signal: AbortSignal.timeout(1500) }));
  await driver.resume(spec);
  assert.equal(await driver.state(spec), 'running');
  assert.equal((await sh('echo alive')).stdout, 'alive\n');
});

test('snapshot round trip: a file and a process holding state in memory come back', { skip: skipReason }, async (t) => {
  if (skipReason) return t.skip(String(skipReason));
  const token = randomBytes(8).toString('hex');
  // /dev/shm is RAM; the loop's pid and its variable exist only in memory.
  await sh(`echo ${token} > /root/note; (x=${token}; while :; do echo "$x" > /dev/shm/live; sleep 0.2; done) >/dev/null 2>&1 & echo $! > /dev/shm/pid`);
  const pid = (await sh('cat /dev/shm/pid')).stdout.trim();
  const uptimeBefore = Number((await sh('cut -d" " -f1 /proc/uptime')).stdout);
  const dir = path.join(tmp, 'snap');
  await fs.mkdir(dir);
  const snap = await driver.snapshot!(spec, { dir, memory: true, after: 'resume' });
  assert.deepEqual(snap.kinds, ['filesystem', 'memory']);
  assert.equal(snap.state, 'running');
  // Change everything after the snapshot, then stop.
  await sh(`rm /root/note; kill ${pid}; rm /dev/shm/live`);
  await driver.stop(spec);
  assert.equal(await driver.state(spec), 'stopped');
  const r = await driver.restoreSnapshot!(spec, dir, snap);
  assert.equal(r.state, 'running');
  const after = await sh(`cat /root/note; cat /dev/shm/live; kill -0 ${pid} && echo alive; cut -d" " -f1 /proc/uptime`);
  const [note, live, alive, uptime] = after.stdout.trim().split('\n');
  assert.equal(note, token, 'the file is back');
  assert.equal(live, token, 'the in-memory file is back');
  assert.equal(alive, 'alive', `process ${pid} runs again`);
  assert.ok(Number(uptime) >= uptimeBefore, 'the guest continued; it did not reboot');
});

test('a QEMU that dies is noticed; run starts it again on the same disk', { skip: skipReason }, async (t) => {
  if (skipReason) return t.skip(String(skipReason));
  await sh('sync');
  const pid = Number(qemuProcesses()[0]!.trim().split(/\s+/)[0]);
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && (await driver.state(spec)) !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(await driver.state(spec), 'stopped');
  await driver.run(spec);
  assert.equal(await driver.state(spec), 'running');
  const note = await sh('cat /root/note').catch(async (e: Error) => {
    const diag = execFileSync('sh', ['-c', `ip neigh; bridge fdb show dev ${spec.slot.hostIf}; ip -d link show ${spec.slot.hostIf}; tail -c 1500 ${spec.dir}/console.log`], { encoding: 'utf8' });
    throw new Error(`${e.message}\n${diag}`);
  });
  assert.match(note.stdout, /^[0-9a-f]{16}\n$/, 'the disk survived the crash');
});

test('stop is graceful, destroy leaves no process, tap, socket, cgroup or disk', { skip: skipReason }, async (t) => {
  if (skipReason) return t.skip(String(skipReason));
  await driver.stop(spec);
  assert.equal(await driver.state(spec), 'stopped');
  assert.ok(await fs.stat(path.join(spec.dir, 'disk.qcow2')), 'stop keeps the disk');
  assert.match(await fs.readFile(path.join(spec.dir, 'console.log'), 'utf8'), /shutting down/, 'the guest was asked to shut down');
  await driver.destroy(spec);
  assert.equal(await driver.state(spec), 'missing');
  assert.deepEqual(qemuProcesses(), []);
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  assert.doesNotMatch(links, new RegExp(`\\b${spec.slot.hostIf}\\b`));
  await assert.rejects(fs.stat(spec.dir));
  await assert.rejects(fs.stat(driver.vmRunDir(spec.workspaceId)));
  for (const c of ['memory', 'pids', 'cpu,cpuacct']) await assert.rejects(fs.stat(`/sys/fs/cgroup/${c}/hearth/${plan.bridge}/vm-${spec.workspaceId}`));
  assert.deepEqual(await driver.list(), []);
});
