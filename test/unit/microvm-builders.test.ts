/**
 * The microvm driver's pure builders against literal golden text
 * (test/golden/microvm-*): QEMU argv, kernel command line, the initramfs
 * /init script and file list. Regenerate deliberately with UPDATE_GOLDEN=1
 * and review the diff. Plus the small parsers and encoders they rely on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { kernelCmdline, qemuArgv, tscKhzFromCpuinfo, type QemuLaunch } from '../../src/host/drivers/microvm/qemu-argv.ts';
import { GUEST_MODULES, initScript, initramfsLayout } from '../../src/host/drivers/microvm/boot-media/initramfs.ts';
import { encodeCpio } from '../../src/host/drivers/microvm/boot-media/cpio.ts';
import { parseCandidate, parseKernelDepends } from '../../src/host/drivers/microvm/boot-media/kernel.ts';
import { baseDiskKey, mkfsBaseArgs, uuidFromKey } from '../../src/host/drivers/microvm/boot-media/disks.ts';
import { cgroupWrites, QEMU_OVERHEAD_MB } from '../../src/host/drivers/microvm/cgroup.ts';
import { identityFor } from '../../src/host/drivers/microvm/identity.ts';
import { probeArgv } from '../../src/host/drivers/microvm/probe.ts';
import { guestKernelFault } from '../../src/host/drivers/microvm/console.ts';
import type { SandboxSpec } from '../../src/host/drivers/driver.ts';
import { slotFor } from '../../src/host/network/slot.ts';
import { golden } from '../helpers/golden.ts';



const LAUNCH: QemuLaunch = {
  name: 'hearth-ws_abc123', accel: 'tcg', kernel: '/a/vm/kernel/k/boot/vmlinuz-6.1.0-56-cloud-amd64', initrd: '/a/vm/initramfs/0a900667bd2e3aeb.cpio',
  cmdline: kernelCmdline({ accel: 'tcg', tscKhz: 2096028 }), vcpus: 1.5, memoryMb: 512, rootDisk: '/data/workspaces/ws_abc123/disk.qcow2',
  agentDisk: '/a/vm/agent/7def8d9d7d8868f0.ext4', tap: 'hth17', mac: '02:48:0a:58:00:13', qmpSocket: '/run/hearth/x/vm/ws_abc123/qmp.sock',
  identitySocket: '/run/hearth/x/vm/ws_abc123/identity.sock', consoleLog: '/data/workspaces/ws_abc123/console.log', pidFile: '/run/hearth/x/vm/ws_abc123/qemu.pid',
  runAs: '1500017:1500017', rootDiskFd: 3, rootDiskRoFd: 4,
};

test('qemuArgv: cold boot under TCG, unprivileged, disk by fd (golden)', () => {
  golden('microvm-qemu-argv.txt', `${qemuArgv(LAUNCH).join('\n')}\n`);
});

test('qemuArgv: restore adds -incoming on the inherited fd; KVM uses the host CPU and keeps the set*id filter without -runas', () => {
  const restore = qemuArgv({ ...LAUNCH, incomingFd: 5 });
  assert.deepEqual(restore.slice(-2), ['-incoming', 'fd:5']);
  assert.deepEqual(restore.slice(0, -2), qemuArgv(LAUNCH), 'a restore differs from a boot only by -incoming (device order is the migration format)');
  const kvm = qemuArgv({ ...LAUNCH, accel: 'kvm', runAs: undefined });
  assert.deepEqual(kvm.slice(kvm.indexOf('-accel'), kvm.indexOf('-accel') + 4), ['-accel', 'kvm', '-cpu', 'host']);
  assert.match(kvm[kvm.indexOf('-sandbox') + 1]!, /elevateprivileges=deny/);
  assert.ok(!kvm.includes('-runas'));
  assert.equal(qemuArgv({ ...LAUNCH, vcpus: 0.25 })[qemuArgv(LAUNCH).indexOf('-smp') + 1], '1', 'fractional cpus round up to whole vCPUs');
});

test('kernelCmdline carries no workspace identity, and pins the TSC only under TCG (golden)', () => {
  const tcg = kernelCmdline({ accel: 'tcg', tscKhz: 2096028 });
  const kvm = kernelCmdline({ accel: 'kvm', tscKhz: 2096028 });
  golden('microvm-cmdline.txt', `${tcg}\n${kvm}\n`);
  for (const c of [tcg, kvm]) assert.doesNotMatch(c, /secret|hearth\.|ip=|hostname/);
});

test('initramfs: /init script and file list (golden), modules in dependency order', () => {
  golden('microvm-init.sh', initScript());
  const layout = initramfsLayout({ modulesDir: '/k/lib/modules/6.1.0-56-cloud-amd64', busybox: '/bin/busybox' });
  golden('microvm-initramfs.txt', `${layout.map((e) => `${e.type} ${e.mode.toString(8)} ${e.path}${e.source ? ` <- ${e.source}` : ''}${e.dev ? ` ${e.dev.join(':')}` : ''}`).join('\n')}\n`);
  const names = GUEST_MODULES.map((m) => path.basename(m, '.ko'));
  const before = (a: string, b: string) => assert.ok(names.indexOf(a) < names.indexOf(b), `${a} before ${b}`);
  before('virtio_ring', 'virtio');
  before('virtio', 'virtio_mmio');
  before('failover', 'net_failover');
  before('net_failover', 'virtio_net');
  assert.match(initScript(), /exec \$B switch_root \/newroot \/\.hearth\/bin\/tini -s -g -- \/\.hearth\/lib\/ld-linux-x86-64\.so\.2 --library-path \/\.hearth\/lib \/\.hearth\/bin\/node \/\.hearth\/vm\/launch\.mjs\n$/);
});

test('encodeCpio writes newc entries, 4-byte aligned, ending in the trailer', () => {
  const buf = encodeCpio([
    { type: 'dir', path: 'bin', mode: 0o755 },
    { type: 'file', path: '/bin/x', mode: 0o755, data: Buffer.from('hello') },
    { type: 'symlink', path: 'sh', target: 'bin/x' },
    { type: 'chardev', path: 'console', mode: 0o600, major: 5, minor: 1 },
  ]);
  const entries: { name: string; mode: number; size: number; rdev: [number, number] }[] = [];
  let off = 0;
  const align = (n: number) => (n + 3) & ~3;
  while (off < buf.length) {
    const h = buf.subarray(off, off + 110).toString('ascii');
    assert.equal(h.slice(0, 6), '070701');
    const field = (i: number) => parseInt(h.slice(6 + i * 8, 14 + i * 8), 16);
    const nameSize = field(11);
    const size = field(6);
    const name = buf.subarray(off + 110, off + 110 + nameSize - 1).toString();
    entries.push({ name, mode: field(1), size, rdev: [field(9), field(10)] });
    off = align(align(off + 110 + nameSize) + size);
    if (name === 'TRAILER!!!') break;
  }
  assert.equal(off, buf.length);
  assert.deepEqual(entries.map((e) => e.name), ['bin', 'bin/x', 'sh', 'console', 'TRAILER!!!']);
  assert.equal(entries[1]!.mode, 0o100755);
  assert.equal(entries[1]!.size, 5);
  assert.equal(entries[2]!.mode, 0o120777);
  assert.deepEqual(entries[3]!.rdev, [5, 1]);
  assert.throws(() => encodeCpio([{ type: 'dir', path: '../etc', mode: 0o755 }]), /bad path/);
});

test('kernel package resolution parses apt-cache output', () => {
  assert.equal(parseKernelDepends('linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n'), 'linux-image-6.1.0-56-cloud-amd64');
  assert.equal(parseKernelDepends('linux-image-cloud-amd64\n'), null);
  assert.equal(parseCandidate('linux-image-x:\n  Installed: (none)\n  Candidate: 6.1.192-2\n'), '6.1.192-2');
  assert.equal(parseCandidate('  Candidate: (none)\n'), null);
  assert.equal(tscKhzFromCpuinfo('processor\t: 0\ncpu MHz\t\t: 2096.028\n'), 2096028);
  assert.equal(tscKhzFromCpuinfo(''), undefined);
});

test('base disks are reproducible: UUID and hash seed come from the key; the key covers digest, layers and size', () => {
  const img = { digest: 'sha256:aa', layers: ['/a/layers/node-20-9c5f/rootfs', '/a/layers/debian-12-c754/rootfs'] };
  const k = baseDiskKey(img, 4096);
  assert.notEqual(k, baseDiskKey(img, 8192));
  assert.notEqual(k, baseDiskKey({ ...img, digest: 'sha256:bb' }, 4096));
  const uuid = uuidFromKey(k);
  assert.match(uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.deepEqual(mkfsBaseArgs('/src', '/out.raw', 4096, k), [
    '-q', '-F', '-t', 'ext4', '-L', 'hearth-root', '-m', '0', '-U', uuid,
    '-E', `root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1,nodiscard,hash_seed=${uuid}`, '-d', '/src', '/out.raw', '4096M',
  ]);
});

test('QEMU cgroup limits: guest memory plus overhead, fractional cpu quota, pids', () => {
  const v1 = { mode: 'hybrid' as const, v1: { memory: '/cg/memory', cpu: '/cg/cpu', cpuacct: '/cg/cpuacct', pids: '/cg/pids' }, unified: null, v2Controllers: [] };
  assert.deepEqual(cgroupWrites(v1, '/hearth/i/vm-ws1', { memoryMb: 512, cpus: 0.5 }), [
    { dir: '/cg/memory/hearth/i/vm-ws1', files: [['memory.limit_in_bytes', String((512 + QEMU_OVERHEAD_MB) * 1048576)]] },
    { dir: '/cg/cpu/hearth/i/vm-ws1', files: [['cpu.cfs_period_us', '100000'], ['cpu.cfs_quota_us', '50000']] },
    { dir: '/cg/cpuacct/hearth/i/vm-ws1', files: [] },
    { dir: '/cg/pids/hearth/i/vm-ws1', files: [['pids.max', '256']] },
  ]);
  const v2 = { mode: 'v2' as const, v1: {}, unified: '/cg', v2Controllers: ['memory', 'cpu', 'pids'] };
  assert.deepEqual(cgroupWrites(v2, '/hearth/i/vm-ws1', { memoryMb: 1024, cpus: 2 }), [
    { dir: '/cg/hearth/i/vm-ws1', files: [['memory.max', String((1024 + QEMU_OVERHEAD_MB) * 1048576)], ['cpu.max', '200000 100000'], ['pids.max', '256']] },
  ]);
});

test('identityFor: the slot\'s network identity, the secret, the image env without HEARTH_ variables', () => {
  const spec = {
    workspaceId: 'ws_1', generation: 1, hostname: 'box', agentSecret: 's3cret', agentPort: 9990, cpus: 1, memoryMb: 512, diskSizeMb: 4096, pidsLimit: 1024,
    image: { id: 'debian-12', ref: 'hearth/debian:12', layers: ['/l'], env: ['PATH=/usr/bin', 'HEARTH_AGENT_SECRET=leak'], workingDir: '/', user: 'root', digest: 'sha256:x' },
    agent: { dir: '/a', hash: 'h' }, slot: slotFor({ bridge: 'hearth0', subnet: '10.88.0.0/16', linkPrefix: 'hth' }, 5), dir: '/d',
  } as SandboxSpec;
  assert.deepEqual(identityFor(spec, ['192.0.2.53'], 1700000000000, 'c2VlZA=='), {
    t: 'identity', workspaceId: 'ws_1', hostname: 'box', secret: 's3cret', port: 9990, ip: '10.88.0.7', prefix: 16, gateway: '10.88.0.1',
    mac: '02:48:0a:58:00:07', nameservers: ['192.0.2.53'], env: ['PATH=/usr/bin'], workdir: '/', now: 1700000000000, seed: 'c2VlZA==',
  });
});

test('the KVM boot probe boots the real kernel into rdinit=/probe with KVM and the host CPU', () => {
  const argv = probeArgv('/k/vmlinuz', '/i.cpio', '/run/p.log');
  assert.deepEqual(argv.slice(0, 7), ['qemu-system-x86_64', '-M', 'microvm,acpi=on,isa-serial=on', '-accel', 'kvm', '-cpu', 'host']);
  assert.match(argv[argv.indexOf('-append') + 1]!, /rdinit=\/probe/);
  assert.ok(initramfsLayout({ modulesDir: '/m', busybox: '/b' }).some((e) => e.path === 'probe'));
});

test('guestKernelFault: a restored guest\'s oops is found; boot noise and user output are not faults', () => {
  // A real console of a template restore that oopsed under TCG (plist corruption in futex_wait).
  const oops = readFileSync(path.resolve(import.meta.dirname, '..', 'fixtures', 'microvm-console-oops.txt'), 'utf8');
  assert.equal(guestKernelFault(oops), 'general protection fault, probably for non-canonical address 0x2e999a69b42646f8: 0000 [#1] PREEMPT SMP NOPTI');
  assert.equal(guestKernelFault('[   32.167363] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [node:121]\n'), 'watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [node:121]');
  assert.equal(guestKernelFault('[    1.0] Kernel panic - not syncing: Attempted to kill init!\r\n'), 'Kernel panic - not syncing: Attempted to kill init!');
  const clean = [
    '[    0.244243] PCI: Fatal: No config space access function found',
    '{"t":"2026-11-29T11:09:42.388Z","src":"hearth-vm","msg":"identity applied","ms":768}',
    '{"src":"hearth-agent","msg":"exec","stderr":"BUG: general protection fault in my app"}',
    'Oops: this line has no kernel timestamp',
  ].join('\n');
  assert.equal(guestKernelFault(clean), null);
});
