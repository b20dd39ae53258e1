#!/bin/busybox sh
# Hearth microVM init (initramfs recipe v2): modules, disks, switch_root.
B=/bin/busybox
fail() { echo "hearth-init: $*" >/dev/console; $B sync; $B poweroff -f; }
$B mount -t devtmpfs -o nosuid,mode=0755 dev /dev
$B mount -t proc -o nosuid,nodev,noexec proc /proc
$B mount -t sysfs -o nosuid,nodev,noexec sys /sys
$B ip link set lo up
for m in virtio_ring virtio virtio_mmio virtio_blk failover net_failover virtio_net virtio_console virtio_balloon virtio-rng; do
  $B insmod /lib/modules/$m.ko || fail "insmod $m"
done
root= agent= n=0
while [ -z "$root" ] || [ -z "$agent" ]; do
  for d in /sys/block/vd*; do
    [ -e "$d/serial" ] || continue
    case "$($B cat $d/serial)" in
      hearth-root) root=/dev/${d##*/} ;;
      hearth-agent) agent=/dev/${d##*/} ;;
    esac
  done
  [ -b "$root" ] && [ -b "$agent" ] && break
  root= agent= n=$((n + 1))
  [ $n -gt 1000 ] && fail "disks hearth-root/hearth-agent did not appear"
  $B usleep 2000
done
$B mount -t ext4 -o noatime,noinit_itable "$root" /newroot || fail "cannot mount the root disk $root"
$B mkdir -p /newroot/.hearth /newroot/dev /newroot/proc /newroot/sys /newroot/run /newroot/tmp
$B mount -t ext4 -o ro,noatime "$agent" /newroot/.hearth || fail "cannot mount the agent drive $agent"
$B mount --move /dev /newroot/dev
$B mount --move /proc /newroot/proc
$B mount --move /sys /newroot/sys
$B mkdir -p /newroot/dev/pts /newroot/dev/shm
$B mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /newroot/dev/pts
$B ln -sf pts/ptmx /newroot/dev/ptmx
$B mount -t tmpfs -o nosuid,nodev,mode=1777 shm /newroot/dev/shm
$B mount -t tmpfs -o nosuid,nodev,mode=0755 run /newroot/run
$B mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /newroot/sys/fs/cgroup
exec $B switch_root /newroot /.hearth/bin/tini -s -g -- /.hearth/lib/ld-linux-x86-64.so.2 --library-path /.hearth/lib /.hearth/bin/node /.hearth/vm/launch.mjs
