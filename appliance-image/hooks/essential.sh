#!/bin/sh
# mmdebstrap --essential-hook: runs after the Essential packages are in place and
# before the kernel and the rest are installed. $1 is the root directory.
set -eu
root=$1
# initramfs-tools settings the kernel's postinst uses when it builds the initramfs.
mkdir -p "$root/etc/initramfs-tools/conf.d"
cat > "$root/etc/initramfs-tools/conf.d/chainroute.conf" <<'CONF'
# chainroute appliance: small zstd initramfs with the storage drivers a server needs.
COMPRESS=zstd
MODULES=most
CONF
# No /vmlinuz links at / (the image keeps its own /boot/vmlinuz links).
printf 'do_symlinks = no\n' > "$root/etc/kernel-img.conf"
# The image's own tools never run apt at runtime; keep no recommends if someone does.
mkdir -p "$root/etc/apt/apt.conf.d"
printf 'APT::Install-Recommends "false";\n' > "$root/etc/apt/apt.conf.d/90chainroute"
