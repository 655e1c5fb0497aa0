#!/usr/bin/env bash
# Writes the W3IP pcap profiles in perf/pktgen/profiles/ with chainroute-pktgen.
# Deterministic: the same binary writes the same bytes (fixed seeds, sequences and
# expiries; Ed25519 signatures are deterministic), so check.sh can compare.
#   perf/pktgen/make-profiles.sh [OUT_DIR]    (default perf/pktgen/profiles)
# The identity is the lab's generator (lab/demo.sh): wallets G1/G2 and the device
# seed sha256("chainroute lab: generator"), so signed and BIND frames verify at the
# lab's routers; BINDs expire in 2100 and start at sequence 1000.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-perf/pktgen/profiles}
mkdir -p "$OUT"
PG=${PKTGEN:-}
if [ -z "$PG" ]; then
  cargo build -q -p chainroute-perf --bin chainroute-pktgen
  PG=${CARGO_TARGET_DIR:-target}/debug/chainroute-pktgen
fi
G1=0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc
G2=0xbcC085bFa4680fA8B407eCB04e26D1ec831B7692
SEED=$(printf 'chainroute lab: generator' | sha256sum | cut -c1-64)
ID=(--wallet "$G1" --tunnel-wallet "$G2" --device-seed "$SEED" --locator 2001:0:0:6e:: --bind-seq 1000 --bind-expiry 4102444800)
COMMON=(--dst "2002::/16,2001:db8::/32" --flows 1024 --src-mac 02:00:00:00:6e:01 --dst-mac 02:00:00:00:0a:01
        --tunnel-src 10.9.0.2:40000 --tunnel-dst 10.9.0.1:5733 --count 1024 --pool 1024)
gen() { local name=$1; shift; "$PG" --write-pcap "$OUT/$name.pcap" "${COMMON[@]}" "$@" 2>/dev/null; echo "  $OUT/$name.pcap"; }
echo "writing profiles:"
# Plain data from a fixed source (no identity): any router with routes forwards it.
gen w3ip-native-128 --size 128 --mix native=1 --src 2001:db8::1
gen w3ip-native-512 --size 512 --mix native=1 --src 2001:db8::1
gen w3ip-tunnel-138 --size 138 --mix tunnel=1 --src 2001:db8::1
# The lab generator's identity: BINDs first, then the mix.
gen w3ip-signed "${ID[@]}" --size 256 --mix signed=1
gen w3ip-mix "${ID[@]}" --size 128 --mix native=80,tunnel=12,signed=2,bind=1,invalid=2,spoofed=2,badsig=1
gen w3ip-invalid "${ID[@]}" --size 128 --mix invalid=5,spoofed=3,badsig=2
