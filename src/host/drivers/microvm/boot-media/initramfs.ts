/**
 * Hearth's own initramfs for the microVM: busybox-static, the virtio modules
 * of Debian's cloud kernel, and one shell script as /init. The recipe (the
 * script text and the file list) is pure and pinned by a golden test
 * (test/golden/microvm-init.sh, microvm-initramfs.txt); `buildInitramfs`
 * reads the files and encodes the archive (uncompressed: the kernel copies
 * it instead of inflating it, which matters under TCG).
 *
 * What /init does, in order:
 *   1. mount devtmpfs, proc, sysfs;
 *   2. insmod the virtio modules in dependency order (the cloud kernel has
 *      them as modules, docs/host-facts.md; virtio_ring before virtio, failover before
 *      virtio_net);
 *   3. find the root disk and the agent drive by their virtio serial
 *      (`hearth-root`, `hearth-agent`): vdX letters follow probe order, which
 *      on microvm is not the command-line order;
 *   4. mount root read-write, the agent drive read-only on /.hearth, move
 *      dev/proc/sys into the new root and add devpts, /dev/shm, /run and the
 *      cgroup2 hierarchy;
 *   5. switch_root to the image with tini as PID 1 and the guest launcher
 *      (vm/launch.mjs on the agent drive) under it, run by the drive's own
 *      loader and Node. The launcher waits for its identity on a virtio
 *      serial port (see ../identity.ts): nothing workspace-specific is in
 *      the kernel command line or this archive, so one initramfs serves
 *      every VM and a booted VM can become a template.
 * Any failure powers the VM off with a message on the console; QEMU runs
 * with -no-reboot, so it exits and the driver reports the VM stopped.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { AGENT_MOUNT } from '../../../images/types.ts';
import { encodeCpio, type CpioEntry } from './cpio.ts';

/** Bump when the script or the file list changes (part of the archive's cache key). */
export const INITRAMFS_RECIPE_VERSION = 2;

/** Module files (relative to lib/modules/<release>/kernel), in load order. */
export const GUEST_MODULES: readonly string[] = [
  'drivers/virtio/virtio_ring.ko',
  'drivers/virtio/virtio.ko',
  'drivers/virtio/virtio_mmio.ko',
  'drivers/block/virtio_blk.ko',
  'net/core/failover.ko',
  'drivers/net/net_failover.ko',
  'drivers/net/virtio_net.ko',
  'drivers/char/virtio_console.ko',
  'drivers/virtio/virtio_balloon.ko',
  'drivers/char/hw_random/virtio-rng.ko',
];

/** virtio serials the driver gives the two disks (qemu-argv.ts uses the same constants). */
export const ROOT_DISK_SERIAL = 'hearth-root';
export const AGENT_DISK_SERIAL = 'hearth-agent';

/** The guest launcher on the agent drive, and the busybox it uses for network setup. */
export const GUEST_LAUNCHER = `${AGENT_MOUNT}/vm/launch.mjs`;
export const GUEST_BUSYBOX = `${AGENT_MOUNT}/vm/busybox`;

/** argv after switch_root: tini → the drive's loader → node → launcher. */
export function guestInitArgv(): string[] {
  return [
    `${AGENT_MOUNT}/bin/tini`, '-s', '-g', '--',
    `${AGENT_MOUNT}/lib/ld-linux-x86-64.so.2`, '--library-path', `${AGENT_MOUNT}/lib`,
    `${AGENT_MOUNT}/bin/node`, GUEST_LAUNCHER,
  ];
}

/** `rdinit=/probe`: the KVM boot probe's whole userspace (see ../probe.ts). */
export const PROBE_MARKER = 'HEARTH-BOOT-PROBE-OK';
export const PROBE_SCRIPT = `#!/bin/busybox sh
echo ${PROBE_MARKER} >/dev/console
/bin/busybox poweroff -f
`;

/** Pure: the /init script. */
export function initScript(): string {
  const mods = GUEST_MODULES.map((m) => path.posix.basename(m, '.ko')).join(' ');
  const A = AGENT_MOUNT;
  return `#!/bin/busybox sh
# Hearth microVM init (initramfs recipe v${INITRAMFS_RECIPE_VERSION}): modules, disks, switch_root.
B=/bin/busybox
fail() { echo "hearth-init: $*" >/dev/console; $B sync; $B poweroff -f; }
$B mount -t devtmpfs -o nosuid,mode=0755 dev /dev
$B mount -t proc -o nosuid,nodev,noexec proc /proc
$B mount -t sysfs -o nosuid,nodev,noexec sys /sys
$B ip link set lo up
for m in ${mods}; do
  $B insmod /lib/modules/$m.ko || fail "insmod $m"
done
root= agent= n=0
while [ -z "$root" ] || [ -z "$agent" ]; do
  for d in /sys/block/vd*; do
    [ -e "$d/serial" ] || continue
    case "$($B cat $d/serial)" in
      ${ROOT_DISK_SERIAL}) root=/dev/\${d##*/} ;;
      ${AGENT_DISK_SERIAL}) agent=/dev/\${d##*/} ;;
    esac
  done
  [ -b "$root" ] && [ -b "$agent" ] && break
  root= agent= n=$((n + 1))
  [ $n -gt 1000 ] && fail "disks ${ROOT_DISK_SERIAL}/${AGENT_DISK_SERIAL} did not appear"
  $B usleep 2000
done
$B mount -t ext4 -o noatime,noinit_itable "$root" /newroot || fail "cannot mount the root disk $root"
$B mkdir -p /newroot${A} /newroot/dev /newroot/proc /newroot/sys /newroot/run /newroot/tmp
$B mount -t ext4 -o ro,noatime "$agent" /newroot${A} || fail "cannot mount the agent drive $agent"
$B mount --move /dev /newroot/dev
$B mount --move /proc /newroot/proc
$B mount --move /sys /newroot/sys
$B mkdir -p /newroot/dev/pts /newroot/dev/shm
$B mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /newroot/dev/pts
$B ln -sf pts/ptmx /newroot/dev/ptmx
$B mount -t tmpfs -o nosuid,nodev,mode=1777 shm /newroot/dev/shm
$B mount -t tmpfs -o nosuid,nodev,mode=0755 run /newroot/run
$B mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /newroot/sys/fs/cgroup
exec $B switch_root /newroot ${guestInitArgv().join(' ')}
`;
}

export interface InitramfsInputs {
  /** Directory of the extracted kernel modules: lib/modules/<release>. */
  modulesDir: string;
  busybox: string;
}

/** Pure: the archive's entries, with host sources for files (paths only; bytes read at build). */
export function initramfsLayout(inputs: InitramfsInputs): Array<{ path: string; type: 'dir' | 'file' | 'chardev'; mode: number; source?: string; text?: string; dev?: [number, number] }> {
  return [
    ...['bin', 'dev', 'lib', 'lib/modules', 'newroot', 'proc', 'sys'].map((p) => ({ path: p, type: 'dir' as const, mode: 0o755 })),
    { path: 'dev/console', type: 'chardev', mode: 0o600, dev: [5, 1] },
    { path: 'bin/busybox', type: 'file', mode: 0o755, source: inputs.busybox },
    ...GUEST_MODULES.map((m) => ({ path: `lib/modules/${path.posix.basename(m)}`, type: 'file' as const, mode: 0o644, source: path.join(inputs.modulesDir, 'kernel', m) })),
    { path: 'init', type: 'file', mode: 0o755, text: initScript() },
    { path: 'probe', type: 'file', mode: 0o755, text: PROBE_SCRIPT },
  ];
}

/** Read the sources and encode the archive. */
export async function buildInitramfs(inputs: InitramfsInputs): Promise<Buffer> {
  const entries: CpioEntry[] = [];
  for (const e of initramfsLayout(inputs)) {
    if (e.type === 'dir') entries.push({ type: 'dir', path: e.path, mode: e.mode });
    else if (e.type === 'chardev') entries.push({ type: 'chardev', path: e.path, mode: e.mode, major: e.dev![0], minor: e.dev![1] });
    else entries.push({ type: 'file', path: e.path, mode: e.mode, data: e.text !== undefined ? Buffer.from(e.text) : await fs.readFile(e.source!) });
  }
  return encodeCpio(entries);
}
