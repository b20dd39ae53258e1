/**
 * Pure builders for the container driver: the OCI runtime
 * config.json runc runs, the seccomp profile, and the small /etc files the
 * workspace sees. No I/O here; test/unit/oci-config.test.ts pins the output
 * against test/golden/oci-config.json.
 *
 * Security posture (Docker's defaults, with the choices written down):
 * - capabilities: Docker's default set in bounding/effective/permitted,
 *   nothing inheritable or ambient (CVE-2022-24769), no_new_privileges;
 * - seccomp: an allow-list, Docker's default profile made stricter (see
 *   SECCOMP_ALLOWED and SECCOMP_STRICTER); ptrace only when asked;
 * - namespaces: pid, ipc, uts, mount, cgroup, and the network namespace
 *   HostNetwork.attach made, joined by path;
 * - /proc and /sys paths masked or read-only as Docker does;
 * - cgroup limits: memory (no swap beyond it), cpu quota, pids, devices.
 */
import { AGENT_MOUNT, agentArgv } from '../../images/types.ts';
import type { SandboxSpec } from '../driver.ts';

/** Host-dependent knobs (default: the values the golden test pins). */
export interface OciHostLimits {
  /** RLIMIT_NOFILE soft=hard. Without CAP_SYS_RESOURCE runc cannot raise it above hearthd's own hard limit. */
  nofile?: number;
  /** Whether the memory cgroup accounts swap (v1 memory.memsw.*). Without it runc must not be given a swap limit. Default true. */
  swapAccounting?: boolean;
}

/** Host paths the config refers to. */
export interface OciPaths {
  /** The overlay mountpoint (`<spec.dir>/rootfs`). */
  rootfs: string;
  /** The workspace's network namespace (`/run/netns/<slot.hostIf>`). */
  netns: string;
  /** cgroup path, `/hearth/<instance>/<workspaceId>`. */
  cgroupsPath: string;
  /** Directory holding the `hostname`, `hosts` and `resolv.conf` files bound into /etc (spec.dir). */
  etcDir: string;
}

/** Docker's default capability set. */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
] as const;

/**
 * The seccomp filter is an allow-list: a syscall not named here fails with
 * EPERM (runc answers ENOSYS for syscalls newer than any it knows, so libc
 * falls back to older ones). The list is Docker's default profile for
 * x86-64 and the capabilities we grant (Docker's default set), minus the
 * entries below where Hearth is stricter. Docker's list is the base because
 * it is what real images and build tools are known to run under.
 */
export const SECCOMP_ALLOWED: readonly string[] = [
  'accept', 'accept4', 'access', 'adjtimex', 'alarm', 'bind', 'brk', 'capget', 'capset', 'chdir', 'chmod', 'chown', 'chown32',
  'clock_adjtime', 'clock_adjtime64', 'clock_getres', 'clock_getres_time64', 'clock_gettime', 'clock_gettime64', 'clock_nanosleep',
  'clock_nanosleep_time64', 'close', 'close_range', 'connect', 'copy_file_range', 'creat', 'dup', 'dup2', 'dup3', 'epoll_create',
  'epoll_create1', 'epoll_ctl', 'epoll_ctl_old', 'epoll_pwait', 'epoll_pwait2', 'epoll_wait', 'epoll_wait_old', 'eventfd', 'eventfd2',
  'execve', 'execveat', 'exit', 'exit_group', 'faccessat', 'faccessat2', 'fadvise64', 'fadvise64_64', 'fallocate', 'fanotify_mark',
  'fchdir', 'fchmod', 'fchmodat', 'fchown', 'fchown32', 'fchownat', 'fcntl', 'fcntl64', 'fdatasync', 'fgetxattr', 'flistxattr', 'flock',
  'fork', 'fremovexattr', 'fsetxattr', 'fstat', 'fstat64', 'fstatat64', 'fstatfs', 'fstatfs64', 'fsync', 'ftruncate', 'ftruncate64',
  'futex', 'futex_time64', 'futex_waitv', 'futimesat', 'getcpu', 'getcwd', 'getdents', 'getdents64', 'getegid', 'getegid32', 'geteuid',
  'geteuid32', 'getgid', 'getgid32', 'getgroups', 'getgroups32', 'getitimer', 'getpeername', 'getpgid', 'getpgrp', 'getpid', 'getppid',
  'getpriority', 'getrandom', 'getresgid', 'getresgid32', 'getresuid', 'getresuid32', 'getrlimit', 'get_robust_list', 'getrusage',
  'getsid', 'getsockname', 'getsockopt', 'get_thread_area', 'gettid', 'gettimeofday', 'getuid', 'getuid32', 'getxattr',
  'inotify_add_watch', 'inotify_init', 'inotify_init1', 'inotify_rm_watch', 'io_cancel', 'ioctl', 'io_destroy', 'io_getevents',
  'io_pgetevents', 'io_pgetevents_time64', 'ioprio_get', 'ioprio_set', 'io_setup', 'io_submit', 'ipc', 'kill', 'landlock_add_rule',
  'landlock_create_ruleset', 'landlock_restrict_self', 'lchown', 'lchown32', 'lgetxattr', 'link', 'linkat', 'listen', 'listxattr',
  'llistxattr', '_llseek', 'lremovexattr', 'lseek', 'lsetxattr', 'lstat', 'lstat64', 'madvise', 'membarrier', 'memfd_create',
  'memfd_secret', 'mincore', 'mkdir', 'mkdirat', 'mknod', 'mknodat', 'mlock', 'mlock2', 'mlockall', 'mmap', 'mmap2', 'mprotect',
  'mq_getsetattr', 'mq_notify', 'mq_open', 'mq_timedreceive', 'mq_timedreceive_time64', 'mq_timedsend', 'mq_timedsend_time64',
  'mq_unlink', 'mremap', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'msync', 'munlock', 'munlockall', 'munmap', 'nanosleep', 'newfstatat',
  '_newselect', 'open', 'openat', 'openat2', 'pause', 'pidfd_open', 'pidfd_send_signal', 'pipe', 'pipe2', 'pkey_alloc', 'pkey_free',
  'pkey_mprotect', 'poll', 'ppoll', 'ppoll_time64', 'prctl', 'pread64', 'preadv', 'preadv2', 'prlimit64', 'process_mrelease', 'pselect6',
  'pselect6_time64', 'pwrite64', 'pwritev', 'pwritev2', 'read', 'readahead', 'readlink', 'readlinkat', 'readv', 'recv', 'recvfrom',
  'recvmmsg', 'recvmmsg_time64', 'recvmsg', 'remap_file_pages', 'removexattr', 'rename', 'renameat', 'renameat2', 'restart_syscall',
  'rmdir', 'rseq', 'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn', 'rt_sigsuspend',
  'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_tgsigqueueinfo', 'sched_getaffinity', 'sched_getattr', 'sched_getparam',
  'sched_get_priority_max', 'sched_get_priority_min', 'sched_getscheduler', 'sched_rr_get_interval', 'sched_rr_get_interval_time64',
  'sched_setaffinity', 'sched_setattr', 'sched_setparam', 'sched_setscheduler', 'sched_yield', 'seccomp', 'select', 'semctl', 'semget',
  'semop', 'semtimedop', 'semtimedop_time64', 'send', 'sendfile', 'sendfile64', 'sendmmsg', 'sendmsg', 'sendto', 'setfsgid', 'setfsgid32',
  'setfsuid', 'setfsuid32', 'setgid', 'setgid32', 'setgroups', 'setgroups32', 'setitimer', 'setpgid', 'setpriority', 'setregid',
  'setregid32', 'setresgid', 'setresgid32', 'setresuid', 'setresuid32', 'setreuid', 'setreuid32', 'setrlimit', 'set_robust_list',
  'setsid', 'setsockopt', 'set_thread_area', 'set_tid_address', 'setuid', 'setuid32', 'setxattr', 'shmat', 'shmctl', 'shmdt', 'shmget',
  'shutdown', 'sigaltstack', 'signalfd', 'signalfd4', 'sigprocmask', 'sigreturn', 'socketcall', 'socketpair', 'splice', 'stat', 'stat64',
  'statfs', 'statfs64', 'statx', 'symlink', 'symlinkat', 'sync', 'sync_file_range', 'syncfs', 'sysinfo', 'tee', 'tgkill', 'time',
  'timer_create', 'timer_delete', 'timer_getoverrun', 'timer_gettime', 'timer_gettime64', 'timer_settime', 'timer_settime64',
  'timerfd_create', 'timerfd_gettime', 'timerfd_gettime64', 'timerfd_settime', 'timerfd_settime64', 'times', 'tkill', 'truncate',
  'truncate64', 'ugetrlimit', 'umask', 'uname', 'unlink', 'unlinkat', 'utime', 'utimensat', 'utimensat_time64', 'utimes', 'vfork',
  'vmsplice', 'wait4', 'waitid', 'waitpid', 'write', 'writev',
  // x86 only, as in Docker.
  'arch_prctl', 'modify_ldt',
  // CAP_SYS_CHROOT is granted (build tools chroot), so Docker allows chroot.
  'chroot',
];

/**
 * Where Hearth refuses what Docker's default allows, and why. A test checks
 * that none of these is in SECCOMP_ALLOWED.
 */
export const SECCOMP_STRICTER: Record<string, string> = {
  io_uring_setup: 'io_uring is a major kernel attack surface (libuv and others fall back to threads)',
  io_uring_enter: 'io_uring is a major kernel attack surface',
  io_uring_register: 'io_uring is a major kernel attack surface',
  name_to_handle_at: 'companion of open_by_handle_at (the "shocker" escape), useless without CAP_DAC_READ_SEARCH',
  ptrace: 'reads and writes other processes: only with config.allow_ptrace (debuggers, strace)',
  process_vm_readv: 'reads another process\'s memory: only with config.allow_ptrace',
  process_vm_writev: 'writes another process\'s memory: only with config.allow_ptrace',
  kcmp: 'compares kernel objects of other processes: only with config.allow_ptrace',
  pidfd_getfd: 'steals a file descriptor from another process: only with config.allow_ptrace',
  process_madvise: 'advises on another process\'s memory: only with config.allow_ptrace',
};

/** Allowed only when the workspace asks for debugging (`config.allow_ptrace: true`). */
export const SECCOMP_PTRACE: readonly string[] = ['ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd', 'process_madvise'];

/** clone() flags that create namespaces: clone is allowed only without them (unshare and setns are not allowed at all). */
const CLONE_NS_MASK = 0x7e020000; // NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET

/** The personality() values allowed (Docker's): the default, UNAME26, PER_LINUX32, both, and the query 0xffffffff. */
const PERSONALITY_ALLOWED = [0x0, 0x0008, 0x20000, 0x20008, 0xffffffff];

/** AF_VSOCK: refused as in Docker (no vsock devices exist, and it reaches the host's). */
const AF_VSOCK = 40;

const EPERM = 1;
const ENOSYS = 38;

export interface SeccompRule {
  names: string[];
  action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  args?: { index: number; value: number; valueTwo: number; op: 'SCMP_CMP_MASKED_EQ' | 'SCMP_CMP_EQ' | 'SCMP_CMP_NE' }[];
}

export interface SeccompProfile {
  defaultAction: 'SCMP_ACT_ERRNO';
  defaultErrnoRet: number;
  architectures: string[];
  syscalls: SeccompRule[];
}

export function seccompProfile(opts: { allowPtrace?: boolean } = {}): SeccompProfile {
  const syscalls: SeccompRule[] = [
    { names: [...SECCOMP_ALLOWED], action: 'SCMP_ACT_ALLOW' },
    { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: AF_VSOCK, valueTwo: 0, op: 'SCMP_CMP_NE' }] },
    ...PERSONALITY_ALLOWED.map((value): SeccompRule => ({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value, valueTwo: 0, op: 'SCMP_CMP_EQ' }] })),
    // Masked equality: allowed when (flags & mask) == 0, i.e. no namespace flag set.
    { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NS_MASK, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
    // clone3 passes its flags in a struct seccomp cannot inspect: ENOSYS makes
    // glibc fall back to clone(), whose flags the rule above can see.
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
  ];
  if (opts.allowPtrace) syscalls.push({ names: [...SECCOMP_PTRACE], action: 'SCMP_ACT_ALLOW' });
  return { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: EPERM, architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'], syscalls };
}

export const MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];

export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Character devices a workspace may use (everything else is denied by the devices cgroup). */
const ALLOWED_DEVICES: { major: number; minor?: number; what: string }[] = [
  { major: 1, minor: 3, what: 'null' },
  { major: 1, minor: 5, what: 'zero' },
  { major: 1, minor: 7, what: 'full' },
  { major: 1, minor: 8, what: 'random' },
  { major: 1, minor: 9, what: 'urandom' },
  { major: 5, minor: 0, what: 'tty' },
  { major: 5, minor: 2, what: 'ptmx' },
  { major: 136, what: 'pts/*' },
];

export const CPU_PERIOD_US = 100_000;
/** cgroup v1 cpu.shares of a pooled sandbox until its claim (the kernel's minimum is 2; the default 1024). */
export const POOLED_CPU_SHARES = 2;
export const DEFAULT_CPU_SHARES = 1024;
export const NOFILE_LIMIT = 1_048_576;
const MiB = 1024 * 1024;

/** /dev/shm size: half the memory limit, at least 64 MiB (tmpfs pages are charged to the workspace anyway). */
export function shmSizeMb(memoryMb: number): number {
  return Math.max(64, Math.floor(memoryMb / 2));
}

/** The environment of the workspace's first process: the image's, then the agent's own settings. */
export function processEnv(spec: Pick<SandboxSpec, 'image' | 'agentSecret' | 'agentPort' | 'workspaceId' | 'pooled'>): string[] {
  const env = spec.image.env.filter((e) => !e.startsWith('HEARTH_'));
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  env.push(`HEARTH_AGENT_SECRET=${spec.agentSecret}`, `HEARTH_AGENT_PORT=${spec.agentPort}`, `HEARTH_WORKSPACE_ID=${spec.workspaceId}`);
  if (spec.image.workingDir && spec.image.workingDir !== '/') env.push(`HEARTH_WORKDIR=${spec.image.workingDir}`);
  if (spec.pooled) env.push('HEARTH_AGENT_POOLED=1');
  return env;
}

/** The OCI runtime config (config.json) for one workspace. Pure. */
export function ociConfig(spec: SandboxSpec, paths: OciPaths, limits: OciHostLimits = {}): Record<string, unknown> {
  const caps = [...DEFAULT_CAPABILITIES];
  const nofile = limits.nofile ?? NOFILE_LIMIT;
  const etc = (name: string) => ({
    destination: `/etc/${name}`, type: 'bind', source: `${paths.etcDir}/${name}`, options: ['rbind', 'rprivate', 'nosuid', 'nodev', 'noexec'],
  });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: agentArgv(),
      env: processEnv(spec),
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: nofile, soft: nofile }],
      noNewPrivileges: true,
    },
    root: { path: paths.rootfs, readonly: false },
    hostname: spec.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shmSizeMb(spec.memoryMb)}m`] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
      { destination: AGENT_MOUNT, type: 'bind', source: spec.agent.dir, options: ['rbind', 'ro', 'nosuid', 'nodev'] },
      etc('resolv.conf'),
      etc('hostname'),
      etc('hosts'),
    ],
    linux: {
      namespaces: [
        { type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' },
        { type: 'network', path: paths.netns },
      ],
      cgroupsPath: paths.cgroupsPath,
      resources: {
        devices: [
          { allow: false, access: 'rwm' },
          { allow: true, type: 'c', access: 'm' },
          { allow: true, type: 'b', access: 'm' },
          ...ALLOWED_DEVICES.map((d) => ({ allow: true, type: 'c', major: d.major, ...(d.minor === undefined ? {} : { minor: d.minor }), access: 'rwm' })),
        ],
        // swap is memory+swap in OCI: equal to the limit means no swap beyond it.
        memory: limits.swapAccounting === false ? { limit: spec.memoryMb * MiB } : { limit: spec.memoryMb * MiB, swap: spec.memoryMb * MiB },
        // A pooled sandbox starts at the lowest CPU weight, so a refill yields to every create; its claim restores the default (claimIdentity).
        cpu: { quota: Math.round(spec.cpus * CPU_PERIOD_US), period: CPU_PERIOD_US, ...(spec.pooled ? { shares: POOLED_CPU_SHARES } : {}) },
        pids: { limit: spec.pidsLimit },
      },
      sysctl: {
        // Network-namespace sysctls, as Docker sets them: unprivileged ping and low ports for non-root users.
        'net.ipv4.ping_group_range': '0 2147483647',
        'net.ipv4.ip_unprivileged_port_start': '0',
      },
      seccomp: seccompProfile({ allowPtrace: spec.allowPtrace === true }),
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}

/** Contents of /etc/hostname. */
export function renderHostname(hostname: string): string {
  return `${hostname}\n`;
}

/** Contents of /etc/hosts: loopback names and the workspace's own address. */
export function renderHosts(hostname: string, ip: string): string {
  return [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
    `${ip}\t${hostname}`,
    '',
  ].join('\n');
}

/** Contents of /etc/resolv.conf. */
export function renderResolvConf(nameservers: string[], search: string[] = []): string {
  return [
    '# Written by Hearth; edits last until the workspace restarts.',
    ...(search.length ? [`search ${search.join(' ')}`] : []),
    ...nameservers.map((n) => `nameserver ${n}`),
    '',
  ].join('\n');
}

/**
 * Nameservers for workspaces from the host's resolv.conf text: loopback
 * resolvers (systemd-resolved's 127.0.0.53, dnsmasq) are unreachable from a
 * workspace's namespace, so they are dropped and, if none remain, public
 * resolvers are used (Docker's rule).
 */
export function workspaceNameservers(hostResolvConf: string, fallback: string[] = ['1.1.1.1', '8.8.8.8']): { nameservers: string[]; search: string[] } {
  const nameservers: string[] = [];
  let search: string[] = [];
  for (const line of hostResolvConf.split('\n')) {
    const [key, ...rest] = line.trim().split(/\s+/);
    if (key === 'nameserver' && rest[0] && !/^127\.|^::1$|^0\.0\.0\.0$/.test(rest[0]) && !rest[0].includes(':')) nameservers.push(rest[0]);
    if (key === 'search' || key === 'domain') search = rest;
  }
  return { nameservers: nameservers.length ? nameservers : fallback, search };
}
