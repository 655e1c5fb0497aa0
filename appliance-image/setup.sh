#!/usr/bin/env bash
# Installs what building and boot-testing the appliance image needs (Debian 12), idempotently.
set -euo pipefail
PKGS=(mmdebstrap qemu-utils qemu-system-x86 grub-pc-bin grub-efi-amd64-bin grub-common
      dosfstools mtools e2fsprogs gdisk zstd openssl openssh-client python3 ovmf)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
missing_pkgs() {
  missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
}
# Two passes: an install can remove a package that was there. A qemu-utils newer
# than Debian 12's (a backport, as some machine images carry) conflicts with
# Debian 12's qemu-system-x86, and apt resolves that by removing it; the second
# pass then installs the matching qemu-utils.
for pass in 1 2; do
  missing_pkgs
  [ ${#missing[@]} -gt 0 ] || break
  echo "appliance-image: installing Debian packages: ${missing[*]}" >&2
  [ "$pass" -eq 2 ] || $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
done
missing_pkgs
if [ ${#missing[@]} -gt 0 ]; then
  echo "appliance-image: still missing after installing: ${missing[*]}" >&2
  exit 1
fi
