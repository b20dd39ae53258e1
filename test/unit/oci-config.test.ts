/**
 * The container driver's pure builders: config.json pinned against
 * test/golden/oci-config.json (regenerate deliberately with UPDATE_GOLDEN=1
 * and review the diff), plus the properties that must hold whatever the
 * golden says.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { floorConfig } from '../../src/host/drivers/container/floor.ts';
import { overlayOptions, decodeMountPath } from '../../src/host/drivers/container/mounts.ts';
import {
  DEFAULT_CAPABILITIES, SECCOMP_ALLOWED, SECCOMP_STRICTER, SECCOMP_PTRACE, ociConfig, processEnv, renderHostname, renderHosts, renderResolvConf, seccompProfile, shmSizeMb, workspaceNameservers,
} from '../../src/host/drivers/container/oci.ts';
import { containerId, ContainerDriverError } from '../../src/host/drivers/container/driver.ts';
import type { SandboxSpec } from '../../src/host/drivers/driver.ts';
import { agentArgv } from '../../src/host/images/types.ts';
import { slotFor, DEFAULT_NETWORK_PLAN } from '../../src/host/network/slot.ts';
import { golden } from '../helpers/golden.ts';


const spec: SandboxSpec = {
  workspaceId: 'ws_golden1',
  generation: 3,
  hostname: 'golden-box',
  image: {
    id: 'python-3.11', ref: 'hearth/python:3.11',
    layers: ['/var/lib/hearth/artifacts/layers/python-0123456789abcdef/rootfs', '/var/lib/hearth/artifacts/layers/debian-12-fedcba9876543210/rootfs'],
    env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'LANG=C.UTF-8', 'HEARTH_AGENT_SECRET=from-the-image-must-not-win'],
    workingDir: '/root', user: 'root', digest: 'sha256:abc',
  },
  agent: { dir: '/var/lib/hearth/artifacts/agent/0123abcd', hash: 'sha256:0123abcd' },
  agentSecret: 's3cret',
  agentPort: 61000,
  cpus: 1.5,
  memoryMb: 512,
  diskSizeMb: 4096,
  pidsLimit: 512,
  slot: slotFor(DEFAULT_NETWORK_PLAN, 17),
  dir: '/var/lib/hearth/workspaces/ws_golden1',
};
const paths = { rootfs: `${spec.dir}/rootfs`, netns: '/run/netns/hth17', cgroupsPath: '/hearth/default/ws_golden1', etcDir: spec.dir };

test('ociConfig: the whole config.json (golden)', () => {
  golden('oci-config.json', `${JSON.stringify(ociConfig(spec, paths), null, 2)}\n`);
});

test('ociConfig: process, limits and namespaces as the driver contract says', () => {
  const c = ociConfig(spec, paths) as {
    process: { args: string[]; env: string[]; cwd: string; terminal: boolean; user: object; noNewPrivileges: boolean; capabilities: Record<string, string[]>; rlimits: object[] };
    linux: { namespaces: { type: string; path?: string }[]; cgroupsPath: string; resources: { memory: { limit: number; swap: number }; cpu: { quota: number; period: number }; pids: { limit: number } } };
    mounts: { destination: string; options: string[]; source: string }[];
  };
  assert.deepEqual(c.process.args, agentArgv());
  assert.equal(c.process.cwd, '/');
  assert.equal(c.process.terminal, false);
  assert.deepEqual(c.process.user, { uid: 0, gid: 0 });
  assert.equal(c.process.noNewPrivileges, true);
  assert.deepEqual(Object.keys(c.process.capabilities).sort(), ['bounding', 'effective', 'permitted']);
  for (const set of Object.values(c.process.capabilities)) assert.deepEqual(set, [...DEFAULT_CAPABILITIES]);
  assert.deepEqual(c.process.env.filter((e) => e.startsWith('HEARTH_')), ['HEARTH_AGENT_SECRET=s3cret', 'HEARTH_AGENT_PORT=61000', 'HEARTH_WORKSPACE_ID=ws_golden1', 'HEARTH_WORKDIR=/root'], 'the image WorkingDir reaches the agent (exec cwd default)');
  assert.deepEqual(c.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }]);
  assert.deepEqual(c.linux.namespaces.map((n) => n.type), ['pid', 'ipc', 'uts', 'mount', 'cgroup', 'network']);
  assert.equal(c.linux.namespaces.at(-1)!.path, '/run/netns/hth17');
  assert.equal(c.linux.cgroupsPath, '/hearth/default/ws_golden1');
  assert.deepEqual(c.linux.resources.memory, { limit: 512 * 1048576, swap: 512 * 1048576 });
  assert.deepEqual(c.linux.resources.cpu, { quota: 150000, period: 100000 });
  assert.deepEqual(c.linux.resources.pids, { limit: 512 });
  const agent = c.mounts.find((m) => m.destination === '/.hearth')!;
  assert.equal(agent.source, spec.agent.dir);
  assert.deepEqual(agent.options, ['rbind', 'ro', 'nosuid', 'nodev']);
  const sys = c.mounts.find((m) => m.destination === '/sys')!;
  assert.ok(sys.options.includes('ro'));
  for (const f of ['resolv.conf', 'hostname', 'hosts']) assert.equal(c.mounts.find((m) => m.destination === `/etc/${f}`)!.source, `${spec.dir}/${f}`);
  const limited = ociConfig(spec, paths, { nofile: 20000 }) as { process: { rlimits: object[] } };
  assert.deepEqual(limited.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 20000, soft: 20000 }]);
});

test('seccomp: an allow-list (EPERM by default), stricter than Docker where written down, ptrace only when asked', () => {
  const p = seccompProfile();
  assert.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
  assert.equal(p.defaultErrnoRet, 1);
  assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  const allowed = new Set(p.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names));
  // What a workspace needs to run anything, and what it must never reach.
  for (const name of ['read', 'write', 'openat', 'execve', 'mmap', 'futex', 'epoll_wait', 'socketpair', 'getrandom', 'statx', 'chroot', 'arch_prctl']) assert.ok(allowed.has(name), name);
  for (const name of ['kexec_load', 'init_module', 'finit_module', 'delete_module', 'reboot', 'swapon', 'acct', 'bpf', 'perf_event_open', 'keyctl',
    'add_key', 'request_key', 'open_by_handle_at', 'name_to_handle_at', 'userfaultfd', 'iopl', 'ioperm', 'quotactl', 'settimeofday', 'clock_settime',
    'pivot_root', 'mount', 'umount2', 'fsopen', 'move_mount', 'open_tree', 'unshare', 'setns', 'syslog', 'io_uring_setup', 'ptrace',
    'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd', 'clone3', 'vhangup', 'sethostname']) {
    assert.ok(!p.syscalls.some((r) => r.action === 'SCMP_ACT_ALLOW' && r.names.includes(name)), `${name} is not allowed`);
  }
  for (const name of Object.keys(SECCOMP_STRICTER)) assert.ok(!SECCOMP_ALLOWED.includes(name), `${name} is refused on purpose`);
  for (const why of Object.values(SECCOMP_STRICTER)) assert.ok(why.length > 5);
  assert.equal(new Set(SECCOMP_ALLOWED).size, SECCOMP_ALLOWED.length, 'no duplicates');
  assert.deepEqual(p.syscalls.find((r) => r.names[0] === 'clone3'), { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
  // clone only without namespace flags: (flags & mask) == 0, the mask covering CLONE_NEWUSER and CLONE_NEWNS.
  const clone = p.syscalls.filter((r) => r.names.includes('clone'));
  assert.equal(clone.length, 1);
  const arg = clone[0]!.args![0]!;
  assert.deepEqual([arg.op, arg.valueTwo], ['SCMP_CMP_MASKED_EQ', 0]);
  for (const flag of [0x10000000, 0x00020000, 0x20000000, 0x40000000]) assert.equal((arg.value & flag) >>> 0, flag);
  assert.equal(arg.value & 0x00010f00, 0, 'thread flags (CLONE_VM|FS|FILES|SIGHAND|THREAD) pass');
  // personality: exact values only (the query 0xffffffff among them); READ_IMPLIES_EXEC is not one.
  const personalities = p.syscalls.filter((r) => r.names[0] === 'personality').map((r) => r.args![0]!.value);
  assert.ok(personalities.includes(0xffffffff) && personalities.includes(0));
  assert.ok(!personalities.includes(0x0400000));

  const debug = seccompProfile({ allowPtrace: true });
  const debugAllowed = new Set(debug.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW').flatMap((r) => r.names));
  for (const name of SECCOMP_PTRACE) assert.ok(debugAllowed.has(name), `${name} with allow_ptrace`);
  assert.ok(!debugAllowed.has('bpf') && !debugAllowed.has('unshare'), 'allow_ptrace opens nothing else');
});

test('env: the image cannot override the agent settings; PATH has a default', () => {
  assert.deepEqual(processEnv({ ...spec, image: { ...spec.image, env: [] } }).slice(0, 1), ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  const env = processEnv(spec);
  assert.equal(env.filter((e) => e.startsWith('HEARTH_AGENT_SECRET=')).length, 1);
  assert.ok(env.includes('LANG=C.UTF-8'));
});

test('/etc files and nameservers', () => {
  assert.equal(renderHostname('box'), 'box\n');
  assert.match(renderHosts('box', '10.88.0.19'), /^127\.0\.0\.1\tlocalhost\n[\s\S]*^10\.88\.0\.19\tbox\n$/m);
  assert.equal(renderResolvConf(['192.0.2.1'], ['example.test']), '# Written by Hearth; edits last until the workspace restarts.\nsearch example.test\nnameserver 192.0.2.1\n');
  assert.deepEqual(workspaceNameservers('nameserver 127.0.0.53\noptions edns0\n'), { nameservers: ['1.1.1.1', '8.8.8.8'], search: [] });
  assert.deepEqual(workspaceNameservers('search a.test b.test\nnameserver 192.0.2.1\nnameserver ::1\nnameserver 127.0.0.1\n'), { nameservers: ['192.0.2.1'], search: ['a.test', 'b.test'] });
  assert.equal(shmSizeMb(64), 64);
  assert.equal(shmSizeMb(4096), 2048);
});

test('overlay options: top layer first, refused on paths that would break the option string', () => {
  assert.equal(overlayOptions({ lower: ['/l/top', '/l/base'], upper: '/w/upper', work: '/w/work' }), 'lowerdir=/l/top:/l/base,upperdir=/w/upper,workdir=/w/work,index=off');
  for (const bad of ['/l/a,b', '/l/a:b', 'relative', '/l/a b']) assert.throws(() => overlayOptions({ lower: [bad], upper: '/u', work: '/w' }), /overlay path/, bad);
  assert.throws(() => overlayOptions({ lower: [], upper: '/u', work: '/w' }), /at least one/);
  assert.equal(decodeMountPath('/a\\040b'), '/a b');
});

test('container ids are runc-safe and derived from the workspace id', () => {
  assert.equal(containerId('ws_abc123'), 'hth-ws_abc123');
  for (const bad of ['', 'a/b', 'a b', 'x'.repeat(130)]) assert.throws(() => containerId(bad), ContainerDriverError, bad);
});

test('floor config: same namespaces, limits, nothing Hearth-specific', () => {
  const c = floorConfig('/r', ['/bin/true']) as { root: { path: string }; linux: { namespaces: { type: string }[] } };
  assert.equal(c.root.path, '/r');
  assert.deepEqual(c.linux.namespaces.map((n) => n.type), ['pid', 'ipc', 'uts', 'mount', 'network']);
});
