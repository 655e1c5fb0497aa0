#!/bin/sh
# mmdebstrap --customize-hook: the last step of the cached base system. $1 is the root.
# Only what needs the chroot or the packages' files lives here; the chainroute files are
# added by build.sh on top of the cached base (so changing them does not re-bootstrap).
set -eu
root=$1
# The daemon's user: chainrouted runs unprivileged (plus the capabilities in its unit).
chroot "$root" useradd --system --user-group --home-dir /var/lib/chainroute \
    --no-create-home --shell /usr/sbin/nologin --comment "chainroute daemon" chainroute
# Host keys are per appliance: generated at first boot into the data partition.
rm -f "$root"/etc/ssh/ssh_host_*
# Per-machine identity is made at first boot, not baked in.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Stable kernel/initrd names for the boot loader.
kver=$(ls "$root/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -n1)
[ -n "$kver" ] || { echo "customize: no kernel in /boot" >&2; exit 1; }
ln -sf "vmlinuz-$kver" "$root/boot/vmlinuz"
ln -sf "initrd.img-$kver" "$root/boot/initrd.img"
[ -s "$root/boot/initrd.img-$kver" ] || { echo "customize: no initrd for $kver" >&2; exit 1; }
# No package lists or caches in the image.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
       "$root"/var/log/*.log "$root"/var/log/apt/*
