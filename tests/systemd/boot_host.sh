#!/bin/sh
# Runs as PID 1 of a fresh PID + mount (+ net, + cgroup) namespace, started by systemd_host.py:
# builds an overlay root (lower = the host's /, upper = a temporary directory) with its own
# /proc, /sys, cgroup2, a minimal /dev and fresh tmpfs on /tmp, /run and /var/tmp, masks the
# units that have no business in a test host, checks that nothing of the host's /tmp is
# reachable, then pivots into the overlay and execs systemd.
#
# SAFETY: systemd booted against the host's real root runs systemd-tmpfiles at boot and empties
# the host's /tmp, deleting everyone's files. Every check below aborts before exec otherwise.
#
#   [HOST_LOWER=DIR] [HOST_BINDS=DIR:DIR...] boot_host.sh ROOT UPPER WORK CANARY LOG
#
# HOST_LOWER: the overlay's lower layer, / by default (a bare Debian tree from debootstrap for
# `make systemd-host-test-bare`); HOST_BINDS: directories shown read-only at the same path.
set -eu
ROOT=$1 UPPER=$2 WORK=$3 CANARY=$4 LOG=$5
LOWER=${HOST_LOWER:-/}

die() { echo "boot_host: $*" >&2; exit 1; }
[ "$$" = 1 ] || die "not PID 1 of a new PID namespace"
[ -e "$CANARY" ] || die "canary $CANARY missing in the host's /tmp"

# Nothing we mount may leak back into the host's mount namespace.
mount --make-rprivate /
mkdir -p "$ROOT"
[ -x "$LOWER/lib/systemd/systemd" ] || die "$LOWER has no /lib/systemd/systemd"
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$WORK" "$ROOT"
[ "$(stat -f -c %T "$ROOT")" = overlayfs ] || die "$ROOT is not an overlay"

mount -t proc -o nosuid,nodev,noexec proc "$ROOT/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$ROOT/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$ROOT/sys/fs/cgroup"

mount -t tmpfs -o mode=0755,nosuid,size=16m tmpfs "$ROOT/dev"
for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  name=${node%%:*} majmin=${node#*:}
  mknod -m 0666 "$ROOT/dev/$name" c "${majmin%%:*}" "${majmin#*:}"
done
mkdir -m 0755 "$ROOT/dev/pts" "$ROOT/dev/shm" "$ROOT/dev/snd"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$ROOT/dev/pts"
ln -s pts/ptmx "$ROOT/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/dev/shm"
ln -s /proc/self/fd "$ROOT/dev/fd"
ln -s /proc/self/fd/0 "$ROOT/dev/stdin"
ln -s /proc/self/fd/1 "$ROOT/dev/stdout"
ln -s /proc/self/fd/2 "$ROOT/dev/stderr"
# systemd's console is our log file (never the host's console); tty1 for the touchscreen unit
# is a pseudo-terminal's worth of nothing: a regular file cage never draws on (it runs headless).
touch "$ROOT/dev/console" "$ROOT/dev/tty1"
mount --bind "$LOG" "$ROOT/dev/console"

mount -t tmpfs -o mode=1777,nosuid,nodev,size=2g tmpfs "$ROOT/tmp"
mount -t tmpfs -o mode=1777,nosuid,nodev,size=1g tmpfs "$ROOT/var/tmp"
mount -t tmpfs -o mode=0755,nosuid,nodev,size=256m tmpfs "$ROOT/run"

old_ifs=$IFS; IFS=:
for dir in ${HOST_BINDS:-}; do
  mkdir -p "$ROOT$dir"
  mount --bind "$dir" "$ROOT$dir"
  mount -o remount,bind,ro "$ROOT$dir"
done
IFS=$old_ifs

# The check the whole design rests on: the overlay's /tmp is a fresh tmpfs, not the host's.
[ "$(stat -f -c %T "$ROOT/tmp")" = tmpfs ] || die "$ROOT/tmp is not a tmpfs"
[ "$(stat -c %d "$ROOT/tmp")" != "$(stat -c %d /tmp)" ] || die "$ROOT/tmp is the host's /tmp"
[ -z "$(ls -A "$ROOT/tmp")" ] || die "$ROOT/tmp is not empty"
[ ! -e "$ROOT$CANARY" ] || die "the host's /tmp canary is visible inside the overlay"
[ "$(stat -f -c %T "$ROOT/var/tmp")" = tmpfs ] || die "$ROOT/var/tmp is not a tmpfs"

# Units with no business here: device management (no udev in a container), networking (the
# namespace has only lo), and services of the host image unrelated to the kiosk.
mask="systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket
  systemd-udev-trigger.service systemd-udev-settle.service systemd-networkd.service
  systemd-networkd.socket systemd-networkd-wait-online.service networking.service
  NetworkManager.service ssh.service sshd.service postgresql.service cron.service
  apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer
  dpkg-db-backup.timer systemd-timesyncd.service getty@tty1.service console-getty.service
  serial-getty@.service systemd-logind-varlink.socket systemd-firstboot.service
  systemd-remount-fs.service systemd-modules-load.service
  sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount sys-fs-fuse-connections.mount
  dev-hugepages.mount dev-mqueue.mount"
mkdir -p "$ROOT/etc/systemd/system"
for unit in $mask; do ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"; done
ln -sf /lib/systemd/system/multi-user.target "$ROOT/etc/systemd/system/default.target"
echo haolinju-test > "$ROOT/etc/hostname"
: > "$ROOT/etc/machine-id"

cd "$ROOT"
mkdir -p .oldroot
pivot_root . .oldroot
umount -l /.oldroot
rmdir /.oldroot
# What systemd does itself on a real boot but leaves to a container manager: shared propagation
# inside this namespace (LoadCredential= moves its ramfs into /run/credentials and relies on the
# move propagating back from the helper's namespace). The host's mounts stay private to us.
mount --make-rshared /
cd /
export container=haolinju-test
exec /lib/systemd/systemd --log-target=journal-or-kmsg --log-level=info
