#!/usr/bin/env bash
# Builds the chainroute appliance: a bootable x86_64 disk image (raw and qcow2) and the
# root-filesystem update that `chainroute-upgrade` writes into the other root slot.
#
#   appliance-image/build.sh [--out DIR] [--version V] [--bin-dir DIR] [--rootfs-only]
#                            [--no-qcow2] [--no-zst] [--base-only] [--broken]
#   --rootfs-only  only the update (root file system); --base-only: only fill the cache;
#   --broken       (tests) a release whose chainrouted exits at once. Settings: image.conf.
#
# Stages (see README.md):
#   1. base system: mmdebstrap of Debian 12 with the kernel, systemd and the DPDK runtime;
#      cached under $CR_CACHE by a hash of everything that goes into it;
#   2. chainroute layer: the binaries, units, tools and configuration on top of the base;
#   3. root filesystem image (ext4) = the update artifact;
#   4. disk: GPT (BIOS boot, ESP, root A, root B, data), GRUB for BIOS and UEFI, grubenv.
# Needs root (mmdebstrap's chroot, file ownership in the image); no loop devices or mounts.
set -euo pipefail
export PATH="/usr/sbin:/sbin:$PATH"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
# shellcheck source=image.conf
. "$HERE/image.conf"

OUT=${CR_OUT:-$HERE/out}
CACHE=${CR_CACHE:-$HERE/cache}
VERSION=${CR_VERSION:-}
ROOTFS_ONLY=0
BROKEN=0
QCOW2=1
ZST=1
BASE_ONLY=0
BIN_DIR=${CR_BIN_DIR:-${CARGO_TARGET_DIR:-$TOP/target}/release}

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --version) VERSION=$2; shift 2 ;;
    --rootfs-only) ROOTFS_ONLY=1; shift ;;
    --broken) BROKEN=1; shift ;;            # tests only: chainrouted never comes up
    --no-qcow2) QCOW2=0; shift ;;
    --no-zst) ZST=0; shift ;;
    --base-only) BASE_ONLY=1; shift ;;      # stage 1 only (fills the cache)
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; usage 2 ;;
  esac
done

log() { printf '[image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }
T0=$(date +%s)

if [ "$(id -u)" -ne 0 ]; then
  # mmdebstrap's chroot and the file ownership inside the image need root.
  command -v sudo >/dev/null || die "needs root (mmdebstrap chroot and file ownership in the image)"
  exec sudo -E PATH="$PATH" "$0" "$@"
fi

# ---------------------------------------------------------------- tools
"$HERE/setup.sh"

# ---------------------------------------------------------------- inputs
for b in chainrouted chainroute; do
  [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b is missing: run cargo build --release -p chainroute-mgmt (make image does)"
done
if [ -z "$VERSION" ]; then
  base_ver=$(sed -n 's/^version = "\(.*\)"/\1/p' "$TOP/Cargo.toml" | head -n1)
  rev=$(git -C "$TOP" rev-parse --short=8 HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$TOP" status --porcelain 2>/dev/null | grep -q . && echo .dirty || true)
  VERSION="${base_ver:-0.0.0}+g${rev}${dirty}"
fi
case "$VERSION" in *[!A-Za-z0-9.+~_-]*|'') die "--version: use letters, digits and . + ~ _ - only";; esac
BUILD_ID=$(date -u +%Y%m%dT%H%M%SZ)
NAME=chainroute-$VERSION
mkdir -p "$OUT" "$CACHE"

# The Debian packages of the shared libraries the binaries link (DPDK 22.11 and friends).
lib_packages() {
  local f p
  for f in $(ldd "$BIN_DIR/chainrouted" "$BIN_DIR/chainroute" | awk '/=> \//{print $3}' | sort -u); do
    p=$(dpkg -S "$f" 2>/dev/null || dpkg -S "$(readlink -f "$f")" 2>/dev/null \
        || dpkg -S "/usr$f" 2>/dev/null || dpkg -S "/usr$(readlink -f "$f")" 2>/dev/null || true)
    [ -n "$p" ] || die "no Debian package owns $f (linked by chainrouted): the image could not run it"
    echo "${p%%:*}"
  done | sort -u | tr '\n' ' '
}
LIB_PACKAGES=$(lib_packages)
PACKAGES=$(echo "$CR_PACKAGES $CR_DPDK_PACKAGES $LIB_PACKAGES" | tr -s ' \n' '\n' | sort -u | tr '\n' ' ')

# ---------------------------------------------------------------- stage 1: base system
base_key=$( { echo "$CR_SUITE $CR_MIRROR $CR_SECURITY_MIRROR"; echo "$PACKAGES"; echo "$CR_MODULES_EXCLUDE";
              cat "$HERE/hooks/essential.sh" "$HERE/hooks/customize.sh"; } | sha256sum | cut -c1-16)
BASE_TAR=$CACHE/base-$CR_SUITE-$base_key.tar
if [ ! -s "$BASE_TAR" ]; then
  log "stage 1: bootstrapping Debian $CR_SUITE (cache miss: $BASE_TAR)"
  dpkgopts=()
  for p in '/usr/share/man/*' '/usr/share/info/*' '/usr/share/locale/*' '/usr/share/doc/*' '/usr/share/lintian/*'; do
    dpkgopts+=(--dpkgopt="path-exclude=$p")
  done
  dpkgopts+=(--dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-include=/usr/share/locale/locale.alias')
  for m in $CR_MODULES_EXCLUDE; do
    dpkgopts+=(--dpkgopt="path-exclude=/lib/modules/*/kernel/$m/*")
  done
  rm -f "$BASE_TAR.tmp"
  mmdebstrap --variant=apt --mode=root --format=tar \
    --include="$(echo "$PACKAGES" | tr ' ' ',' | sed 's/,*$//')" \
    "${dpkgopts[@]}" \
    --essential-hook="$HERE/hooks/essential.sh" \
    --customize-hook="$HERE/hooks/customize.sh" \
    "$CR_SUITE" "$BASE_TAR.tmp" \
    "deb $CR_MIRROR $CR_SUITE main" \
    "deb $CR_MIRROR $CR_SUITE-updates main" \
    "deb $CR_SECURITY_MIRROR $CR_SUITE-security main"
  mv "$BASE_TAR.tmp" "$BASE_TAR"
  # Older bases are of no use any more.
  find "$CACHE" -maxdepth 1 -name "base-$CR_SUITE-*.tar" ! -name "$(basename "$BASE_TAR")" -delete
  log "stage 1: done ($(du -m "$BASE_TAR" | cut -f1) MiB)"
else
  log "stage 1: cached base $(basename "$BASE_TAR")"
fi

[ "$BASE_ONLY" = 1 ] && exit 0

# ---------------------------------------------------------------- stage 2: chainroute layer
WORK=$(mktemp -d "$OUT/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
TREE=$WORK/tree
mkdir -p "$TREE"
log "stage 2: chainroute $VERSION on the base"
tar -C "$TREE" --numeric-owner --xattrs --xattrs-include='*' -xpf "$BASE_TAR"

install -m 0755 "$BIN_DIR/chainrouted" "$TREE/usr/bin/chainrouted"
install -m 0755 "$BIN_DIR/chainroute" "$TREE/usr/bin/chainroute"
strip --strip-unneeded "$TREE/usr/bin/chainrouted" "$TREE/usr/bin/chainroute" 2>/dev/null || true
# The overlay: units, tools, configuration (root-owned; modes as in the source tree).
(cd "$HERE/rootfs" && find . -mindepth 1 | sort | while read -r p; do
   if [ -d "$p" ]; then install -d -m 0755 "$TREE/$p"
   else install -m "$(stat -c %a "$p")" "$p" "$TREE/$p"; fi
 done)

if [ "$BROKEN" = 1 ]; then
  # A deliberately broken release (tests): the daemon exits at once, so the slot never
  # reports SERVING and the appliance must fall back to the previous slot.
  cat > "$TREE/usr/bin/chainrouted" <<'EOF'
#!/bin/sh
echo "chainrouted: deliberately broken test build: refusing to start" >&2
exit 1
EOF
  chmod 0755 "$TREE/usr/bin/chainrouted"
fi

# Identity of this build.
cat > "$TREE/etc/chainroute-release" <<EOF
NAME=chainroute
VERSION=$VERSION
BUILD_ID=$BUILD_ID
VARIANT=$([ "$BROKEN" = 1 ] && echo broken-test || echo appliance)
DEBIAN=$(cat "$TREE/etc/debian_version")
KERNEL=$(readlink "$TREE/boot/vmlinuz" | sed 's/^vmlinuz-//')
EOF
rm -f "$TREE/etc/os-release"
{ grep -v -E '^(PRETTY_NAME|IMAGE_ID|IMAGE_VERSION)=' "$TREE/usr/lib/os-release"
  echo "PRETTY_NAME=\"chainroute $VERSION (Debian $(cat "$TREE/etc/debian_version"))\""
  echo "IMAGE_ID=chainroute"
  echo "IMAGE_VERSION=$VERSION"; } > "$TREE/etc/os-release"

# The slot's own boot settings (GRUB sources this file from the slot it boots, so a
# release carries its kernel command line defaults with it).
hp_arg=""
[ "${CR_HUGEPAGES:-0}" -gt 0 ] 2>/dev/null && hp_arg="default_hugepagesz=$CR_HUGEPAGESZ hugepagesz=$CR_HUGEPAGESZ hugepages=$CR_HUGEPAGES"
iso_arg=""
[ -n "$CR_ISOLCPUS" ] && iso_arg="isolcpus=managed_irq,domain,$CR_ISOLCPUS nohz_full=$CR_ISOLCPUS rcu_nocbs=$CR_ISOLCPUS irqaffinity=0"
default_cmdline=$(echo "$hp_arg $iso_arg $CR_CMDLINE_EXTRA" | tr -s ' ' | sed 's/^ //; s/ $//')
cat > "$TREE/boot/chainroute-boot.cfg" <<EOF
# Sourced by the appliance's GRUB (ESP /grub/grub.cfg) for the slot it boots.
# In scope: slot_dev (this slot's GRUB device), slot (a|b), slot_partuuid, trial (0|1),
# cr_cmdline (an operator override from grubenv; empty: this release's default).
# chainroute $VERSION ($BUILD_ID)
set slot_version="$VERSION"
set default_cmdline="$default_cmdline"
if [ -n "\$cr_cmdline" ]; then set tuning="\$cr_cmdline"; else set tuning="\$default_cmdline"; fi
echo "chainroute \$slot_version: slot \$slot (trial \$trial): \$tuning"
linux (\$slot_dev)/boot/vmlinuz root=PARTUUID=\$slot_partuuid rw rootwait console=tty0 console=$CR_SERIAL panic=10 systemd.gpt_auto=0 chainroute.slot=\$slot chainroute.trial=\$trial \$tuning
initrd (\$slot_dev)/boot/initrd.img
EOF
echo "$default_cmdline" > "$TREE/usr/share/chainroute/default-cmdline"
echo "$CR_TRIAL_TIMEOUT_S" > "$TREE/usr/share/chainroute/trial-timeout"

# Units: enabled offline (no chroot needed).
systemctl --root="$TREE" enable chainrouted.service chainroute-setup.service chainroute-slot-check.service \
  systemd-networkd.service systemd-resolved.service systemd-timesyncd.service ssh.service >/dev/null 2>&1 \
  || systemctl --root="$TREE" enable chainrouted.service chainroute-setup.service chainroute-slot-check.service \
       systemd-networkd.service systemd-resolved.service systemd-timesyncd.service ssh.service
# dpdk.service (Debian's /etc/dpdk/interfaces binding) is replaced by chainroute-bind-ports.
systemctl --root="$TREE" mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer e2scrub_reap.service dpdk.service >/dev/null 2>&1 || true
# /etc/resolv.conf from systemd-resolved.
ln -sf ../run/systemd/resolve/stub-resolv.conf "$TREE/etc/resolv.conf"

# Mount points of the persistent state (the data partition).
install -d -m 0755 "$TREE/data" "$TREE/boot/efi" "$TREE/etc/chainroute" "$TREE/var/lib/chainroute" "$TREE/var/log/journal"

# Package manifest of the release.
chroot "$TREE" dpkg-query -W -f='${Package} ${Version}\n' > "$WORK/manifest"

# ---------------------------------------------------------------- stage 3: root filesystem
used_mb=$(du -sxm "$TREE" | cut -f1)
root_mb=$(( (used_mb + used_mb / 10 + CR_ROOT_FREE_MB + 3) / 4 * 4 ))
[ "$root_mb" -le "$CR_SLOT_MB" ] || die "the root filesystem needs $root_mb MiB, the slots are $CR_SLOT_MB MiB (CR_SLOT_MB)"
log "stage 3: root filesystem: $used_mb MiB used, image $root_mb MiB (slot $CR_SLOT_MB MiB)"
ROOTFS=$WORK/rootfs.img
# No ext4 features GRUB 2.06 cannot read (it rejects unknown incompatible features).
mkfs.ext4 -q -F -L cr-root -m 0 -b 4096 -E root_owner=0:0 -O ^metadata_csum_seed \
  -d "$TREE" "$ROOTFS" "${root_mb}M" >/dev/null
e2fsck -fn "$ROOTFS" >/dev/null 2>&1 || die "the root file system does not check clean"
ROOT_SHA=$(sha256sum "$ROOTFS" | cut -d' ' -f1)
cp "$WORK/manifest" "$OUT/$NAME.manifest"
echo "$ROOT_SHA  $NAME.rootfs.img" > "$OUT/$NAME.rootfs.img.sha256"
if [ "$ROOTFS_ONLY" = 1 ]; then
  mv "$ROOTFS" "$OUT/$NAME.rootfs.img"
  ln -sfn "$NAME.rootfs.img" "$OUT/chainroute.rootfs.img"
fi
if [ "$ZST" = 1 ]; then
  src=$ROOTFS; [ -e "$src" ] || src=$OUT/$NAME.rootfs.img
  zstd -q -T0 -6 -f "$src" -o "$OUT/$NAME.rootfs.img.zst"
fi
if [ "$ROOTFS_ONLY" = 1 ]; then
  log "done in $(( $(date +%s) - T0 )) s: $OUT/$NAME.rootfs.img (sha256 $ROOT_SHA)"
  exit 0
fi

# ---------------------------------------------------------------- stage 4: disk
log "stage 4: disk (GPT: bios_grub, ESP, root A, root B, data)"
MiB=1048576
P1=1; P2=$((P1 + 1)); P3=$((P2 + CR_ESP_MB)); P4=$((P3 + CR_SLOT_MB)); P5=$((P4 + CR_SLOT_MB))
END=$((P5 + CR_DATA_MB)); DISK_MB=$((END + 1))
uuid() { cat /proc/sys/kernel/random/uuid; }
PU_ESP=$(uuid); PU_A=$(uuid); PU_B=$(uuid); PU_DATA=$(uuid); DISK_GUID=$(uuid)
ESP_ID=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n' | tr a-f A-F)
ESP_UUID="${ESP_ID:0:4}-${ESP_ID:4:4}"

# ESP (FAT32): GRUB for UEFI, grub.cfg and grubenv (shared by both slots).
ESP=$WORK/esp.img
mkfs.vfat -C -F 32 -S 512 -s 1 -n CR-ESP -i "$ESP_ID" "$ESP" $((CR_ESP_MB * 1024)) >/dev/null
GRUB_MODS="part_gpt part_msdos fat ext2 normal configfile search search_fs_uuid search_label loadenv test
  regexp echo linux serial terminal sleep halt reboot probe cat true"
cat > "$WORK/early.cfg" <<EOF
search --no-floppy --fs-uuid --set=root $ESP_UUID
set prefix=(\$root)/grub
EOF
grub-mkimage -O x86_64-efi -o "$WORK/BOOTX64.EFI" -c "$WORK/early.cfg" -p /grub $GRUB_MODS efi_gop
grub-mkimage -O i386-pc -o "$WORK/core.img" -c "$WORK/early.cfg" -p /grub biosdisk $GRUB_MODS

serial_unit=$(echo "$CR_SERIAL" | sed -n 's/^ttyS\([0-9]*\).*/\1/p'); serial_unit=${serial_unit:-0}
serial_speed=$(echo "$CR_SERIAL" | sed -n 's/^[^,]*,\([0-9]*\).*/\1/p'); serial_speed=${serial_speed:-115200}
sed -e "s/@PU_A@/$PU_A/g" -e "s/@PU_B@/$PU_B/g" -e "s/@SERIAL_UNIT@/$serial_unit/g" \
    -e "s/@SERIAL_SPEED@/$serial_speed/g" "$HERE/grub/grub.cfg" > "$WORK/grub.cfg"
grub-editenv "$WORK/grubenv" create
grub-editenv "$WORK/grubenv" set cr_slot=a
mmd -i "$ESP" ::/EFI ::/EFI/BOOT ::/grub
mcopy -i "$ESP" "$WORK/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$ESP" "$WORK/grub.cfg" ::/grub/grub.cfg
mcopy -i "$ESP" "$WORK/grubenv" ::/grub/grubenv
cat > "$WORK/layout.txt" <<EOF
chainroute $VERSION disk layout (GPT, 512-byte sectors, MiB offsets)
p1 cr-bios    ${P1}-${P2} MiB  BIOS boot (GRUB core.img for legacy BIOS)
p2 cr-esp     ${P2}-${P3} MiB  EFI system partition, FAT32 $ESP_UUID: EFI/BOOT/BOOTX64.EFI, grub/grub.cfg, grub/grubenv
p3 cr-root-a  ${P3}-${P4} MiB  root slot A (ext4) PARTUUID $PU_A
p4 cr-root-b  ${P4}-${P5} MiB  root slot B (ext4) PARTUUID $PU_B
p5 cr-data    ${P5}-${END} MiB  persistent state (ext4), grown to the end of the disk at first boot
EOF
mcopy -i "$ESP" "$WORK/layout.txt" ::/layout.txt

# Data partition: the skeleton of the persistent state.
DATA=$WORK/data
install -d -m 0755 "$DATA/etc" "$DATA/lib" "$DATA/log"
install -d -m 0750 "$DATA/etc/chainroute"
install -d -m 0755 "$DATA/etc/ssh" "$DATA/etc/network" "$DATA/lib/slot" "$DATA/log/journal"
install -d -m 0750 "$DATA/lib/chainroute"
cgid=$(awk -F: '$1=="chainroute"{print $3}' "$TREE/etc/group")
cuid=$(awk -F: '$1=="chainroute"{print $3}' "$TREE/etc/passwd")
chown "0:$cgid" "$DATA/etc/chainroute"; chown "$cuid:$cgid" "$DATA/lib/chainroute"
install -m 0644 "$TREE/usr/share/chainroute/chainroute.toml.example" "$DATA/etc/chainroute/chainroute.toml.example"
echo "installed $VERSION ($BUILD_ID) into slot a" > "$DATA/lib/slot/history"
mkfs.ext4 -q -F -L cr-data -m 1 -b 4096 -O ^metadata_csum_seed -d "$DATA" "$WORK/data.img" "${CR_DATA_MB}M" >/dev/null

RAW=$OUT/$NAME.raw
rm -f "$RAW"
truncate -s "${DISK_MB}M" "$RAW"
sgdisk -Z -U "$DISK_GUID" \
  -n 1:${P1}M:+1M        -t 1:EF02 -c 1:cr-bios \
  -n 2:${P2}M:+${CR_ESP_MB}M  -t 2:EF00 -c 2:cr-esp    -u 2:"$PU_ESP" \
  -n 3:${P3}M:+${CR_SLOT_MB}M -t 3:8304 -c 3:cr-root-a -u 3:"$PU_A" \
  -n 4:${P4}M:+${CR_SLOT_MB}M -t 4:8304 -c 4:cr-root-b -u 4:"$PU_B" \
  -n 5:${P5}M:+${CR_DATA_MB}M -t 5:8300 -c 5:cr-data   -u 5:"$PU_DATA" \
  "$RAW" >/dev/null
put() { dd if="$1" of="$RAW" bs=1M seek="$2" conv=notrunc,sparse status=none; }
put "$ESP" "$P2"
put "$ROOTFS" "$P3"
put "$WORK/data.img" "$P5"
# GRUB for legacy BIOS: boot.img in the MBR, core.img in the BIOS boot partition.
python3 "$HERE/tools/grub-bios-embed.py" "$RAW" /usr/lib/grub/i386-pc/boot.img "$WORK/core.img" \
  $((P1 * 2048)) 2048
sgdisk -v "$RAW" | grep -q 'No problems found' || { sgdisk -v "$RAW"; die "the partition table does not verify"; }

cp "$WORK/layout.txt" "$OUT/$NAME.layout.txt"
ln -sfn "$NAME.raw" "$OUT/chainroute.raw"
if [ "$QCOW2" = 1 ]; then
  qemu-img convert -c -O qcow2 "$RAW" "$OUT/$NAME.qcow2"
  ln -sfn "$NAME.qcow2" "$OUT/chainroute.qcow2"
fi
ln -sfn "$NAME.rootfs.img.sha256" "$OUT/chainroute.rootfs.img.sha256"
[ "$ZST" = 1 ] && ln -sfn "$NAME.rootfs.img.zst" "$OUT/chainroute.rootfs.img.zst"
echo "$VERSION" > "$OUT/VERSION"
# Only the latest build is kept (each is ~1 GiB on disk).
find "$OUT" -maxdepth 1 -type f -name 'chainroute-*' ! -name "$NAME.*" -delete
log "done in $(( $(date +%s) - T0 )) s:"
ls -lsh "$OUT/$NAME".* | sed 's/^/  /' >&2
