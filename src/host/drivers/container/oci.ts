/**
 * Pure builders for the container driver: the OCI runtime
 * config.json runc runs, the seccomp profile, and the small /etc files the
 * workspace sees. No I/O here; test/unit/oci-config.test.ts pins the output
 * against test/golden/oci-config.json.
 *
 * Security posture (Docker's defaults, with the choices written down):
 * - capabilities: Docker's default set in bounding/effective/permitted,
 *   nothing inheritable or ambient (CVE-2022-24769), no_new_privileges;
 * - seccomp: a deny-list (see SECCOMP_DENIED for every decision);
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
 * Syscalls refused with EPERM. Default action is allow: a deny-list keeps
 * every new harmless syscall working (Docker's allow-list breaks new glibc
 * features until it is updated) while closing the known kernel attack
 * surface. Most of these also need a capability we do not grant; the filter
 * is the second wall should a capability leak.
 */
export const SECCOMP_DENIED: Record<string, string> = {
  kexec_load: 'replace the host kernel',
  kexec_file_load: 'replace the host kernel',
  init_module: 'load kernel code',
  finit_module: 'load kernel code',
  delete_module: 'unload kernel code',
  create_module: 'obsolete module loader',
  query_module: 'obsolete module loader',
  get_kernel_syms: 'obsolete module loader',
  reboot: 'host reboot (in a pid namespace it only kills init; refused anyway)',
  swapon: 'host swap is host-wide',
  swapoff: 'host swap is host-wide',
  acct: 'process accounting is host-wide',
  bpf: 'eBPF is a large kernel attack surface and can read kernel memory',
  perf_event_open: 'performance counters leak host information and have a CVE history',
  keyctl: 'kernel keyrings are not namespaced',
  add_key: 'kernel keyrings are not namespaced',
  request_key: 'kernel keyrings are not namespaced',
  open_by_handle_at: 'escapes the mount namespace ("shocker")',
  name_to_handle_at: 'companion of open_by_handle_at',
  userfaultfd: 'used to win kernel races in exploits',
  lookup_dcookie: 'profiling interface, needs CAP_SYS_ADMIN',
  iopl: 'raw I/O port access',
  ioperm: 'raw I/O port access',
  quotactl: 'filesystem quotas are host-wide',
  quotactl_fd: 'filesystem quotas are host-wide',
  settimeofday: 'the clock is host-wide',
  stime: 'the clock is host-wide',
  clock_settime: 'the clock is host-wide',
  clock_adjtime: 'the clock is host-wide',
  adjtimex: 'the clock is host-wide (read-only use by NTP tools is lost: no NTP inside a workspace)',
  pivot_root: 'filesystem layout is fixed by Hearth (runc pivots before the filter applies)',
  mount: 'filesystem layout is fixed by Hearth',
  umount: 'filesystem layout is fixed by Hearth',
  umount2: 'filesystem layout is fixed by Hearth',
  mount_setattr: 'new mount API',
  fsopen: 'new mount API',
  fsconfig: 'new mount API',
  fsmount: 'new mount API',
  fspick: 'new mount API',
  move_mount: 'new mount API',
  open_tree: 'new mount API',
  unshare: 'new namespaces (user namespaces above all) expose kernel attack surface',
  setns: 'joining other namespaces',
  syslog: 'the kernel log is host-wide',
  sysfs: 'obsolete, leaks filesystem info',
  ustat: 'obsolete, leaks filesystem info',
  _sysctl: 'obsolete sysctl interface',
  uselib: 'obsolete loader with a CVE history',
  nfsservctl: 'obsolete NFS server control',
  vm86: '16-bit mode, 32-bit only',
  vm86old: '16-bit mode, 32-bit only',
  io_uring_setup: 'io_uring is a major kernel attack surface (libuv and others fall back to threads)',
  io_uring_enter: 'io_uring is a major kernel attack surface',
  io_uring_register: 'io_uring is a major kernel attack surface',
};

/**
 * Allowed on purpose (Docker's modern defaults agree unless noted):
 * - ptrace, process_vm_readv/writev, kcmp: debuggers and strace must work in a
 *   development workspace; the seccomp-bypass via ptrace was fixed in 4.8 and
 *   the pid namespace limits targets to the workspace's own processes.
 * - personality: allowed except the two flags with exploit history (below);
 *   ADDR_NO_RANDOMIZE stays allowed so gdb can disable ASLR for its inferior
 *   (Docker refuses it).
 * - mbind/set_mempolicy/move_pages: NUMA placement of one's own memory.
 * - chroot: CAP_SYS_CHROOT is granted as in Docker (build tools use it).
 */
/** clone() flags that create namespaces: refused (unshare is refused entirely). */
const CLONE_NS_FLAGS: Record<string, number> = {
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
};

/**
 * personality() flags refused. Each rule matches "flag set and bit 31 clear"
 * (SCMP_CMP_MASKED_EQ with mask flag|0x80000000), which excludes the query
 * value 0xffffffff that glibc and tools use.
 */
const PERSONALITY_DENIED: Record<string, number> = {
  READ_IMPLIES_EXEC: 0x0400000,
  MMAP_PAGE_ZERO: 0x0100000,
};

const EPERM = 1;
const ENOSYS = 38;

export interface SeccompRule {
  names: string[];
  action: 'SCMP_ACT_ERRNO';
  errnoRet: number;
  args?: { index: number; value: number; valueTwo: number; op: 'SCMP_CMP_MASKED_EQ' }[];
}

export function seccompProfile(): { defaultAction: string; architectures: string[]; syscalls: SeccompRule[] } {
  const syscalls: SeccompRule[] = [
    { names: Object.keys(SECCOMP_DENIED), action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
    // clone3 passes its flags in a struct seccomp cannot inspect: ENOSYS makes
    // glibc fall back to clone(), whose flags the rules below can see.
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
  ];
  for (const flag of Object.values(CLONE_NS_FLAGS)) {
    syscalls.push({ names: ['clone'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }] });
  }
  for (const flag of Object.values(PERSONALITY_DENIED)) {
    syscalls.push({ names: ['personality'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [{ index: 0, value: (flag | 0x80000000) >>> 0, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }] });
  }
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'], syscalls };
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
export const NOFILE_LIMIT = 1_048_576;
const MiB = 1024 * 1024;

/** /dev/shm size: half the memory limit, at least 64 MiB (tmpfs pages are charged to the workspace anyway). */
export function shmSizeMb(memoryMb: number): number {
  return Math.max(64, Math.floor(memoryMb / 2));
}

/** The environment of the workspace's first process: the image's, then the agent's own settings. */
export function processEnv(spec: Pick<SandboxSpec, 'image' | 'agentSecret' | 'agentPort' | 'workspaceId'>): string[] {
  const env = spec.image.env.filter((e) => !e.startsWith('HEARTH_'));
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  env.push(`HEARTH_AGENT_SECRET=${spec.agentSecret}`, `HEARTH_AGENT_PORT=${spec.agentPort}`, `HEARTH_WORKSPACE_ID=${spec.workspaceId}`);
  if (spec.image.workingDir && spec.image.workingDir !== '/') env.push(`HEARTH_WORKDIR=${spec.image.workingDir}`);
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
        cpu: { quota: Math.round(spec.cpus * CPU_PERIOD_US), period: CPU_PERIOD_US },
        pids: { limit: spec.pidsLimit },
      },
      sysctl: {
        // Network-namespace sysctls, as Docker sets them: unprivileged ping and low ports for non-root users.
        'net.ipv4.ping_group_range': '0 2147483647',
        'net.ipv4.ip_unprivileged_port_start': '0',
      },
      seccomp: seccompProfile(),
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
