/**
 * Pure builders for the microVM: the kernel command line and the
 * QEMU argv. No I/O; test/unit/microvm-argv.test.ts pins both against
 * test/golden/microvm-*.txt.
 *
 * Machine: `-M microvm` (no PCI, no firmware tables beyond ACPI, virtio-mmio
 * devices), `-nodefaults -no-user-config -nographic -no-reboot`: a guest
 * reboot or panic ends QEMU, which the driver then sees as a stopped VM.
 *
 * Device order is part of the migration format: a template and every VM
 * restored from it must get the same devices in the same order, so the
 * list below is fixed and only backends (file names, tap, MAC) vary.
 */
import { AGENT_DISK_SERIAL, ROOT_DISK_SERIAL } from './boot-media/initramfs.ts';
import { IDENTITY_PORT_NAME } from './identity.ts';

/** Bump when the argv changes in a way that breaks restoring older templates. */
export const QEMU_ARGV_VERSION = 1;

export type Accel = 'kvm' | 'tcg';

export interface QemuLaunch {
  /** QEMU's -name (shows in ps): `hearth-<workspaceId>`. */
  name: string;
  accel: Accel;
  kernel: string;
  initrd: string;
  cmdline: string;
  vcpus: number;
  memoryMb: number;
  /** qcow2 overlay (read-write). */
  rootDisk: string;
  /** The shared read-only agent disk (raw ext4). */
  agentDisk: string;
  /** Host tap the NIC is attached to. */
  tap: string;
  mac: string;
  /** Files in the VM's run dir. */
  qmpSocket: string;
  identitySocket: string;
  consoleLog: string;
  pidFile: string;
  /** `uid:gid` QEMU drops to once its devices are open; omitted = stays root. */
  runAs?: string;
  /** Restore: the migration stream is inherited as this fd (`-incoming fd:N`). */
  incomingFd?: number;
  /**
   * The root disk inherited as this fd (opened O_RDWR by hearthd) instead of
   * opened by path: an unprivileged QEMU reopens its disk when a restored VM
   * continues, and needs no access to the workspace directory that way.
   */
  rootDiskFd?: number;
  /** The same disk opened read-only (QEMU picks the fd whose access mode matches each open). */
  rootDiskRoFd?: number;
}

/** TCG translation cache: QEMU 7.2's default is 1 GiB per VM; 64 MiB is plenty for one small guest. */
const TCG_TB_SIZE_MB = 64;

/** Pure: the kernel command line. Nothing workspace-specific: identity arrives over the serial port. */
export function kernelCmdline(opts: { accel: Accel; tscKhz?: number }): string {
  return [
    'console=ttyS0',
    'quiet',
    'loglevel=4',
    'reboot=t',
    'panic=-1',
    // microvm has no PCI bus: skip probing for one.
    'pci=off',
    // No i8042 controller on microvm: do not wait for one.
    'i8042.noaux', 'i8042.nomux', 'i8042.nopnp',
    'random.trust_cpu=on',
    // Under TCG the guest TSC is the host's TSC. Calibrating it against the emulated PIT fails on a
    // busy host (the guest then hangs early), and the clocksource watchdog later marks it unstable:
    // give the frequency and trust it. KVM guests use kvm-clock and need neither.
    ...(opts.accel === 'tcg' ? [...(opts.tscKhz ? [`tsc_early_khz=${opts.tscKhz}`] : []), 'tsc=reliable'] : []),
    'cryptomgr.notests',
  ].join(' ');
}

/** The host TSC frequency in kHz from /proc/cpuinfo text ("cpu MHz"), or undefined. */
export function tscKhzFromCpuinfo(cpuinfo: string): number | undefined {
  const m = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(cpuinfo);
  return m ? Math.round(Number(m[1]) * 1000) : undefined;
}

/** Pure: the full QEMU argv (argv[0] included). */
export function qemuArgv(l: QemuLaunch): string[] {
  const vcpus = Math.max(1, Math.ceil(l.vcpus));
  const accel = l.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', `tcg,tb-size=${TCG_TB_SIZE_MB}`];
  return [
    'qemu-system-x86_64',
    '-name', `${l.name},debug-threads=on`,
    '-M', 'microvm,acpi=on,isa-serial=on,rtc=on',
    ...accel,
    '-smp', String(vcpus),
    '-m', `${l.memoryMb}M`,
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    // QEMU's own seccomp filter: no obsolete syscalls, no fork/exec, no scheduler/affinity changes, and
    // no set*id. QEMU 7.2 installs the filter before -runas switches uid, so with -runas the set*id
    // rule must stay off (SIGSYS otherwise); the switched uid has no capabilities to regain root with.
    '-sandbox', `on,obsolete=deny,${l.runAs ? '' : 'elevateprivileges=deny,'}spawn=deny,resourcecontrol=deny`,
    ...(l.runAs ? ['-runas', l.runAs] : []),
    '-pidfile', l.pidFile,
    '-kernel', l.kernel,
    '-initrd', l.initrd,
    '-append', l.cmdline,
    // append=on: hearthd caps the log by truncating it (log-cap.ts); QEMU's next write lands at the new end.
    '-chardev', `file,id=console,path=${l.consoleLog},append=on`,
    '-serial', 'chardev:console',
    '-qmp', `unix:${l.qmpSocket},server=on,wait=off`,
    '-chardev', `socket,id=identity,path=${l.identitySocket},server=on,wait=off`,
    '-device', 'virtio-serial-device,max_ports=2',
    '-device', `virtserialport,chardev=identity,name=${IDENTITY_PORT_NAME}`,
    // One QEMU per disk is hearthd's invariant; image locks (OFD locks on the two inherited fds of one file)
    // would only make `cont` after a snapshot fail to re-take the write lock.
    ...(l.rootDiskFd !== undefined ? ['-add-fd', `fd=${l.rootDiskFd},set=1,opaque=rw:${l.rootDisk}`] : []),
    ...(l.rootDiskRoFd !== undefined ? ['-add-fd', `fd=${l.rootDiskRoFd},set=1,opaque=ro:${l.rootDisk}`] : []),
    '-drive', `id=root,file=${l.rootDiskFd !== undefined ? '/dev/fdset/1' : l.rootDisk},format=qcow2,if=none,cache=writeback,discard=unmap,detect-zeroes=unmap,file.locking=off`,
    '-device', `virtio-blk-device,drive=root,serial=${ROOT_DISK_SERIAL}`,
    '-drive', `id=agent,file=${l.agentDisk},format=raw,if=none,readonly=on`,
    '-device', `virtio-blk-device,drive=agent,serial=${AGENT_DISK_SERIAL}`,
    '-netdev', `tap,id=net0,ifname=${l.tap},script=no,downscript=no`,
    '-device', `virtio-net-device,netdev=net0,mac=${l.mac}`,
    // Free page reporting hands pages the guest frees back to the host (madvise), so an idle VM shrinks.
    '-device', 'virtio-balloon-device,free-page-reporting=on',
    '-device', 'virtio-rng-device',
    ...(l.incomingFd !== undefined ? ['-incoming', `fd:${l.incomingFd}`] : []),
  ];
}
