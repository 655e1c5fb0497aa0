#!/usr/bin/env bash
# Installs what building and boot-testing the appliance image needs (Debian 12), idempotently.
set -euo pipefail
PKGS=(mmdebstrap qemu-utils qemu-system-x86 grub-pc-bin grub-efi-amd64-bin grub-common
      dosfstools mtools e2fsprogs gdisk zstd openssl openssh-client python3 ovmf)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "appliance-image: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
