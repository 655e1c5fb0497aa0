#!/usr/bin/env bash
# The chainroute lab (`make demo`): a chain, two appliances and traffic, on one machine.
#
#   anvil (local chain) --- SegmentLicense, ENS, ERC-1056 (contracts/deploy + seed)
#        |  licenses, DID keys, alice.eth                 |
#   [chainrouted A] op-a, 2001::/16 ==memif== [chainrouted B] op-b, 2002::/16 + 2001:db8::/32
#     | memif "gen"   | tap "hosts"            | tap "hosts"    | memif "gen"
#     |           ns bob (w3ip-host)      ns alice (w3ip-host)  |
#     +--------- chainroute-pktgen (port 0 -> A ... B -> port 1) +
#
# Steps: setup + release build, anvil, deploy, seed (two operators, alice.eth and her
# DID device key), three more wallets authorise device keys (bob, the generator's
# two), the generator opens its memif ports, A and B start and learn their routes
# from the chain, alice binds at B, bob resolves alice.eth through A's API and pings
# her anycast address through both routers, the generator binds and sends native,
# tunnelled, signed, invalid and spoofed traffic through A and B, and a summary
# prints routes from chain, Mpps and drops by reason. Everything started here is
# stopped on exit (trap): processes, namespaces, sockets, DPDK runtime files.
#
# Environment: LAB_SECONDS (traffic time, default 10), LAB_RATE (pps or max, default
# max), LAB_PROFILE (release|dev, default release), LAB_KEEP=1 keeps the work dir,
# LAB_SKIP_SETUP=1 skips scripts/setup.sh, LAB_SKIP_BUILD=1 skips cargo build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SECONDS_TRAFFIC=${LAB_SECONDS:-10}
RATE=${LAB_RATE:-max}
PROFILE=${LAB_PROFILE:-release}
T0=$(date +%s.%N)

elapsed() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
say() { printf '\033[1m[lab %5ss]\033[0m %s\n' "$(elapsed "$T0")" "$*"; }
die() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "the lab needs root (network namespaces, taps, DPDK); run: sudo make demo"

# ---------------------------------------------------------------- setup + build
if [ "${LAB_SKIP_SETUP:-0}" != 1 ]; then
  say "installing what is missing (scripts/setup.sh)"
  ./scripts/setup.sh | sed 's/^/    /'
fi
if [ "${LAB_SKIP_BUILD:-0}" != 1 ]; then
  say "building chainrouted, chainroute, chainroute-pktgen, w3ip-host ($PROFILE; a cold release build takes a few minutes on 2 cores)"
  flag=(); [ "$PROFILE" = release ] && flag=(--release)
  set +e
  cargo build "${flag[@]}" -p chainroute-mgmt --bin chainrouted --bin chainroute \
    -p chainroute-perf --bin chainroute-pktgen --bin w3ip-host 2>&1 | tee "${TMPDIR:-/tmp}/chainroute-lab-build.log" \
    | grep --line-buffered -E "^ *(Compiling|Finished)|^error" | sed -u 's/^ */    /'
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || die "cargo build failed (log: ${TMPDIR:-/tmp}/chainroute-lab-build.log)"
  rm -f "${TMPDIR:-/tmp}/chainroute-lab-build.log"
fi
BIN=$ROOT/target/$([ "$PROFILE" = release ] && echo release || echo debug)
for b in chainrouted chainroute chainroute-pktgen w3ip-host; do [ -x "$BIN/$b" ] || die "$BIN/$b was not built"; done
NM=$ROOT/contracts/node_modules/@foundry-rs
ANVIL=$NM/anvil-linux-amd64/bin/anvil
CAST=$NM/cast-linux-amd64/bin/cast
[ -x "$ANVIL" ] && [ -x "$CAST" ] || die "anvil/cast missing: run contracts/setup.sh"

# ---------------------------------------------------------------- state + cleanup
TAG=$$
W=$(mktemp -d /tmp/chainroute-lab.XXXXXX)
NS_BOB=lab-bob-$TAG
NS_ALICE=lab-alice-$TAG
PIDS_ANVIL=""; PID_GEN=""; PID_A=""; PID_B=""; PID_ALICE=""
PREFIXES=(lab-a-$TAG lab-b-$TAG lab-gen-$TAG)
STATUS=1

stop_pid() { # pid signal timeout_s name: stops it and reports a crash (SIGSEGV/SIGABRT)
  local p=$1 sig=$2 t=$3 name=$4 rc=0
  [ -n "$p" ] || return 0
  kill -"$sig" "$p" 2>/dev/null || true
  for _ in $(seq 1 $((t * 10))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then
    say "$name ignored SIG$sig for ${t}s: SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
    STATUS=1
  fi
  wait "$p" 2>/dev/null || rc=$?
  if [ "$rc" -ge 128 ] && [ "$rc" -ne 143 ] && [ "$rc" -ne 130 ]; then
    say "WARNING: $name ended by signal $((rc - 128))"
    STATUS=1
  fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ $STATUS -eq 0 ] || say "stopping (exit $rc)"
  stop_pid "$PID_ALICE" TERM 3 alice
  # memif: loops stop on both sides before anyone closes a port. The generator
  # stops its loops first (its first signal) and holds its ports open...
  if [ -n "$PID_GEN" ] && kill -0 "$PID_GEN" 2>/dev/null && [ ! -s "$W/gen.json" ]; then
    kill -TERM "$PID_GEN" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -s "$W/gen.json" ] || ! kill -0 "$PID_GEN" 2>/dev/null && break; sleep 0.1; done
  fi
  # ...the routers stop their workers and then close their ports...
  # (SIGUSR1 stops a router's workers and keeps its ports: both are quiet before
  # either closes its end of the memif link.)
  for p in "$PID_A" "$PID_B"; do [ -n "$p" ] && kill -USR1 "$p" 2>/dev/null || true; done
  for _ in $(seq 1 30); do
    q=0
    for l in "$W/a.log" "$W/b.log"; do grep -q "workers stopped (SIGUSR1)" "$l" 2>/dev/null && q=$((q + 1)); done
    [ $q -ge 2 ] && break
    sleep 0.1
  done
  [ -n "$PID_A" ] && kill -TERM "$PID_A" 2>/dev/null || true
  [ -n "$PID_B" ] && kill -TERM "$PID_B" 2>/dev/null || true
  stop_pid "$PID_A" TERM 20 "chainrouted A"
  stop_pid "$PID_B" TERM 20 "chainrouted B"
  # ...and then the generator closes its own (its second signal).
  stop_pid "$PID_GEN" TERM 10 chainroute-pktgen
  stop_pid "$PIDS_ANVIL" TERM 5 anvil
  for n in "$NS_BOB" "$NS_ALICE"; do ip netns del "$n" 2>/dev/null || true; done
  for p in "${PREFIXES[@]}"; do rm -rf "/var/run/dpdk/$p"; done
  for f in "$W"/*.log; do
    [ -f "$f" ] && grep -qiE "segmentation|panicked|core dumped" "$f" && say "WARNING: $(basename "$f") reports a crash" && STATUS=1
  done
  if [ "${LAB_KEEP:-0}" = 1 ] || [ $STATUS -ne 0 ]; then
    rm -f "$W"/*.sock
    say "logs kept in $W"
  else
    rm -rf "$W"
  fi
  [ $STATUS -eq 0 ] && say "stopped cleanly: no lab process, namespace, socket or DPDK runtime file left"
  exit $(( rc != 0 ? rc : STATUS ))
}
trap cleanup EXIT
trap 'exit 130' INT TERM

json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
wait_for() { # seconds what command...
  local t=$1 what=$2; shift 2
  for _ in $(seq 1 $((t * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "timed out after ${t}s waiting for $what"
}

# ---------------------------------------------------------------- chain
say "starting anvil (local chain, --port 0)"
"$ANVIL" --port 0 --host 127.0.0.1 >"$W/anvil.log" 2>&1 &
PIDS_ANVIL=$!
wait_for 30 "anvil to listen" grep -q "Listening on" "$W/anvil.log"
RPC="http://$(grep -o 'Listening on .*' "$W/anvil.log" | head -1 | awk '{print $3}')"
say "anvil at $RPC"

DEPLOYER=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
KEY_A=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
KEY_B=0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a
# Three more wallets (topped up from the deployer): bob and the generator's two.
KEY_BOB=0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a
KEY_G1=0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba
KEY_G2=0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d4b8d88b4b1ce7f2d6

say "deploying ENS, the ERC-1056 DID registry and SegmentLicense (contracts/deploy)"
contracts/deploy --rpc "$RPC" --key "$DEPLOYER" --out "$W/deployment.json" >"$W/deploy.log" 2>&1 || { cat "$W/deploy.log"; die "deploy"; }
say "issuing licenses to two operators, alice.eth and her DID device key (contracts/seed)"
contracts/seed --rpc "$RPC" --key "$DEPLOYER" --deployment "$W/deployment.json" --out "$W/seed.json" \
  --operator "name=op-a,key=$KEY_A,root=2001::/16,endpoints=10.0.0.1:5733" \
  --operator "name=op-b,key=$KEY_B,root=2002::/16,endpoints=10.0.0.2:5733" \
  --child "parent=op-a,prefix=2001:db8::/32,to=op-b,endpoints=10.0.0.2:5733" >"$W/seed.log" 2>&1 || { cat "$W/seed.log"; die "seed"; }
sed 's/^/    /' "$W/seed.log"

OP_A=$(json "$W/seed.json" "d['operators'][0]['address']")
OP_B=$(json "$W/seed.json" "d['operators'][1]['address']")
json "$W/seed.json" "d['operators'][0]['routerSeed']" >"$W/a.key"
json "$W/seed.json" "d['operators'][1]['routerSeed']" >"$W/b.key"
ALICE=$(json "$W/seed.json" "d['devices'][0]['wallet']")
ALICE_SEED=$(json "$W/seed.json" "d['devices'][0]['seed'][2:]")

# Device keys for bob and the generator: each wallet authorises one on chain itself.
DID=$(json "$W/deployment.json" "d['contracts']['EthereumDIDRegistry']['address']")
ATTR=$("$CAST" format-bytes32-string "did/pub/Ed25519/veriKey/base64")
seed_of() { printf 'chainroute lab: %s' "$1" | sha256sum | cut -c1-64; }
BOB_SEED=$(seed_of bob); GEN_SEED=$(seed_of generator)
BOB=$("$CAST" wallet address --private-key "$KEY_BOB")
G1=$("$CAST" wallet address --private-key "$KEY_G1")
G2=$("$CAST" wallet address --private-key "$KEY_G2")
for who in "bob $KEY_BOB $BOB $BOB_SEED" "gen-native $KEY_G1 $G1 $GEN_SEED" "gen-tunnel $KEY_G2 $G2 $GEN_SEED"; do
  set -- $who
  pub=$("$BIN/chainroute-pktgen" --print-key "$4")
  "$CAST" send --rpc-url "$RPC" --private-key "$DEPLOYER" --value 1ether "$3" >"$W/fund-$1.log" 2>&1 || { cat "$W/fund-$1.log"; die "funding $1"; }
  "$CAST" send --rpc-url "$RPC" --private-key "$2" "$DID" "setAttribute(address,bytes32,bytes,uint256)" "$3" "$ATTR" "$pub" 31536000 >"$W/did-$1.log" 2>&1 || { cat "$W/did-$1.log"; die "DID for $1"; }
  say "$1 ($3) authorised device key $pub (ERC-1056 setAttribute)"
done

# ---------------------------------------------------------------- generator (memif servers)
MAC_GA=02:00:00:00:6e:01; MAC_GB=02:00:00:00:6e:02
MAC_A_GEN=02:00:00:00:0a:01; MAC_A_CORE=02:00:00:00:0a:02; MAC_A_HOSTS=02:00:00:00:0a:03
MAC_B_GEN=02:00:00:00:0b:01; MAC_B_CORE=02:00:00:00:0b:02; MAC_B_HOSTS=02:00:00:00:0b:03
# memif sockets are abstract (socket-abstract=yes, the default): nothing on disk.
S_GA=/run/chainroute-lab-$TAG-ga.sock; S_GB=/run/chainroute-lab-$TAG-gb.sock; S_AB=/run/chainroute-lab-$TAG-ab.sock
say "starting chainroute-pktgen: memif servers for A and B, waiting for the go"
"$BIN/chainroute-pktgen" --file-prefix "lab-gen-$TAG" --lcores 0-1 --mem 512 --mbufs 16383 \
  --port "net_memif_ga,role=server,socket=$S_GA,id=0@$MAC_GA" \
  --port "net_memif_gb,role=server,socket=$S_GB,id=0@$MAC_GB" \
  --tx 0 --rx 1 --dst-mac "$MAC_A_GEN" --src-mac "$MAC_GA" \
  --dst "2002::/16,2001:db8::/32" --flows 256 --size 128 \
  --mix native=80,tunnel=12,signed=2,bind=1,invalid=2,spoofed=2,badsig=1 \
  --tunnel-src 10.9.0.2:40000 --tunnel-dst 10.9.0.1:5733 \
  --wallet "$G1" --tunnel-wallet "$G2" --device-seed "$GEN_SEED" --locator 2001:0:0:6e:: \
  --rate "$RATE" --seconds "$SECONDS_TRAFFIC" --drain-ms 300 --progress \
  --go-file "$W/go" --hold --hold-max 900 --out "$W/gen.json" --wait-link 20 \
  >"$W/gen.out" 2>"$W/gen.log" &
PID_GEN=$!
wait_for 20 "the generator's ports" grep -q "waiting for" "$W/gen.log"

# ---------------------------------------------------------------- routers
router_config() { # name lcores_extra gen_sock gen_role core_sock core_role mac_gen mac_core mac_hosts peer_core_mac local gen_mac anycast_peer
  cat <<EOF
[dataplane]
lcores = "0-1"
memory_mb = 512
hugepages = false
pci = false
file_prefix = "lab-$1-$TAG"
eal_extra = [$2]
mbufs = 16383
stats_interval_s = 0

[[ports]]
name = "gen"
device = "net_memif_$1g,role=$4,socket=$3,id=0"
mac = "$7"

[[ports]]
name = "core"
device = "net_memif_$1c,role=$6,socket=$5,id=0"
mac = "$8"

[[ports]]
name = "hosts"
device = "net_tap_$1,iface=lab$1$TAG,mac=$9"

[[next_hops]]
name = "gen"
kind = "local"
port = "gen"
mac = "${12}"

[[next_hops]]
name = "anycast-upstream"
kind = "tunnel"
port = "core"
mac = "${10}"
local = "${11}"
remote = "${13}"

# Anycast destinations this router holds no binding for go to the other router.
[[routes]]
prefix = "::/96"
next_hop = "anycast-upstream"

[identity]
device_key_file = "$W/$1.key"

[chain]
rpc_url = "$RPC"
deployment = "$W/deployment.json"
confirmations = 0
poll_interval_ms = 250
underlay_port = "core"
underlay_mac = "${10}"
local = "${11}"
local_next_hop = "gen"

[security]
enabled = true
source_validation = true

[api]
socket = "$W/$1.sock"
EOF
}
router_config a "" "$S_GA" client "$S_AB" server $MAC_A_GEN $MAC_A_CORE $MAC_A_HOSTS $MAC_B_CORE 10.0.0.1:5733 $MAC_GA 10.0.0.2:5733 >"$W/a.toml"
router_config b '"--main-lcore", "1"' "$S_GB" client "$S_AB" client $MAC_B_GEN $MAC_B_CORE $MAC_B_HOSTS $MAC_A_CORE 10.0.0.2:5733 $MAC_GB 10.0.0.1:5733 >"$W/b.toml"
"$BIN/chainrouted" --config "$W/a.toml" --check | sed 's/^/    /'
CON_A=("$BIN/chainroute" --target "unix://$W/a.sock")
CON_B=("$BIN/chainroute" --target "unix://$W/b.sock")
serving() { "$@" -j status | grep -q '"state": "serving"'; }

say "starting chainrouted A (op-a) and B (op-b), linked by memif"
"$BIN/chainrouted" --config "$W/a.toml" >"$W/a.out" 2>"$W/a.log" &
PID_A=$!
wait_for 30 "router A's API" test -S "$W/a.sock"
wait_for 30 "router A's ports" grep -q "workers on lcores" "$W/a.log"
"$BIN/chainrouted" --config "$W/b.toml" >"$W/b.out" 2>"$W/b.log" &
PID_B=$!
wait_for 30 "router A to serve (chain synced)" serving "${CON_A[@]}"
wait_for 30 "router B to serve (chain synced)" serving "${CON_B[@]}"
for r in A B; do
  c=CON_$r[@]
  "${!c}" -j routes >"$W/routes-$r.json"
  say "router $r learnt $(json "$W/routes-$r.json" "sum(1 for r in d if r['source']=='chain')") routes from chain:"
  json "$W/routes-$r.json" "'\n'.join('      %-16s %-6s %s' % (r['prefix'], r['source'], r['next_hop']['kind'] + ((' -> ' + r['next_hop']['remote']) if r['next_hop'].get('remote') else '')) for r in d)"
done

# ---------------------------------------------------------------- hosts (taps in namespaces)
host_ns() { # ns tap router_mac host_ip router_ip
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip link set "$2" netns "$1"
  ip -n "$1" link set "$2" address 02:00:00:00:fe:0$6
  ip -n "$1" addr add "$4/24" dev "$2"
  ip -n "$1" link set "$2" up
  ip -n "$1" neigh add "$5" lladdr "$3" dev "$2" nud permanent
}
host_ns "$NS_BOB" "laba$TAG" "$MAC_A_HOSTS" 10.1.0.2 10.1.0.1 1
host_ns "$NS_ALICE" "labb$TAG" "$MAC_B_HOSTS" 10.2.0.2 10.2.0.1 2

say "alice ($ALICE) binds at B with her DID device key (w3ip-host --echo)"
ip netns exec "$NS_ALICE" "$BIN/w3ip-host" --router 10.2.0.1:5733 --wallet "$ALICE" --device-seed "$ALICE_SEED" \
  --locator 2002:0:0:a:: --echo --seconds 60 >"$W/alice.out" 2>"$W/alice.log" &
PID_ALICE=$!
alice_bound() { "${CON_B[@]}" -j bindings | grep -qi "${ALICE#0x}"; }
wait_for 15 "alice's binding at B" alice_bound
"${CON_B[@]}" bindings | sed 's/^/    /'

say "bob resolves alice.eth through router A's API (chainroute resolve alice.eth):"
"${CON_A[@]}" resolve alice.eth | sed 's/^/    /'
ANYCAST=$("${CON_A[@]}" -j resolve alice.eth | python3 -c "import json,sys; print(json.load(sys.stdin)['anycast'])")
say "bob ($BOB) pings alice.eth = $ANYCAST: bob -> A -> (tunnel) -> B -> alice, and back"
if ip netns exec "$NS_BOB" "$BIN/w3ip-host" --router 10.1.0.1:5733 --wallet "$BOB" --device-seed "$BOB_SEED" \
    --locator 2001:0:0:b:: --ping "$ANYCAST" --count 5 --seconds 10 >"$W/bob.out" 2>"$W/bob.log"; then
  say "alice.eth answered: $(cat "$W/bob.out")"
else
  cat "$W/bob.log" "$W/bob.out"; die "alice.eth did not answer bob's pings"
fi

# ---------------------------------------------------------------- generator traffic
say "generator: BINDs for its two wallets at A, then ${SECONDS_TRAFFIC}s of traffic at rate $RATE"
say "  mix: native 80, tunnelled 12, AUTH-signed 2, BIND 1, invalid 2, spoofed 2, bad signature 1 (per 100)"
touch "$W/go"
prev_a=""; prev_b=""; t_prev=$(date +%s.%N)
rate_line() { # stats.json prev.json dt
  python3 - "$@" <<'PY'
import json, sys
cur = json.load(open(sys.argv[1])); dt = float(sys.argv[3])
try: prev = json.load(open(sys.argv[2]))
except Exception: prev = None
rx = sum(p.get('rx_packets', 0) for p in cur['ports']); tx = sum(p.get('tx_packets', 0) for p in cur['ports'])
prx = sum(p.get('rx_packets', 0) for p in prev['ports']) if prev else rx
ptx = sum(p.get('tx_packets', 0) for p in prev['ports']) if prev else tx
drops = {d['reason']: d['packets'] for d in cur.get('drops', [])}
pd = {d['reason']: d['packets'] for d in prev.get('drops', [])} if prev else drops
top = sorted(((v - pd.get(k, 0), k) for k, v in drops.items()), reverse=True)[:3]
print("rx %6.3f Mpps tx %6.3f Mpps drops/s %s" % ((rx - prx) / dt / 1e6, (tx - ptx) / dt / 1e6,
      " ".join("%s=%d" % (k, v / dt) for v, k in top if v > 0) or "none"))
PY
}
while [ ! -s "$W/gen.json" ]; do
  kill -0 "$PID_GEN" 2>/dev/null || die "the generator exited: $(tail -5 "$W/gen.log")"
  sleep 2
  dt=$(elapsed "$t_prev"); t_prev=$(date +%s.%N)
  "${CON_A[@]}" -j stats >"$W/stats-a.json" 2>/dev/null || true
  "${CON_B[@]}" -j stats >"$W/stats-b.json" 2>/dev/null || true
  say "  A: $(rate_line "$W/stats-a.json" "$W/stats-a.prev" "$dt")"
  say "  B: $(rate_line "$W/stats-b.json" "$W/stats-b.prev" "$dt")"
  say "  generator: $(grep '^pktgen:' "$W/gen.log" | tail -1 | sed 's/^pktgen: *//')"
  cp "$W/stats-a.json" "$W/stats-a.prev" 2>/dev/null || true; cp "$W/stats-b.json" "$W/stats-b.prev" 2>/dev/null || true
done

# ---------------------------------------------------------------- summary
"${CON_A[@]}" -j stats >"$W/stats-a.json"; "${CON_B[@]}" -j stats >"$W/stats-b.json"
"${CON_A[@]}" -j status >"$W/status-a.json"; "${CON_B[@]}" -j status >"$W/status-b.json"
python3 - "$W" <<'PY'
import json, sys, os
w = sys.argv[1]
g = json.load(open(os.path.join(w, 'gen.json')))
r = g['result']
print("\n================ chainroute lab: summary ================")
for name in ('a', 'b'):
    st = json.load(open(os.path.join(w, 'status-%s.json' % name)))
    s = json.load(open(os.path.join(w, 'stats-%s.json' % name)))
    ch = st.get('chain', {})
    print("router %s: %s, %s routes (%s from chain, %s static), licenses %s valid, device keys %s, synced block %s"
          % (name.upper(), st['state'], st.get('routes'), st.get('chain_routes'), st.get('static_routes'),
             ch.get('valid_licenses'), ch.get('device_keys'), ch.get('synced_block')))
    for p in s['ports']:
        print("  port %-6s rx %10d tx %10d" % (p['name'], p.get('rx_packets', 0), p.get('tx_packets', 0)))
    drops = [(d['packets'], d['reason']) for d in s.get('drops', []) if d.get('packets', 0) > 0]
    print("  drops by reason: " + (", ".join("%s=%d" % (k, v) for v, k in sorted(drops, reverse=True)) or "none"))
print("generator (port 0 -> A -> memif -> B -> port 1), %d B frames, %s, %d worker:" % (g['frame_bytes'], r['offered_pps'] if r['offered_pps'] != 'max' else 'max rate', g['workers']))
print("  sent %d (%.3f Mpps), received %d (%.3f Mpps) through both routers" % (r['sent'], r['tx_mpps'], r['received'], r['rx_mpps']))
print("  deliverable: sent %d, received %d, lost %d (loss ratio %.6f); the memif ring pushed back on %d more (backpressure)"
      % (r['deliverable_sent'], r['deliverable_received'], r['lost'], r['loss_ratio'], r['refused']))
lat = r.get('latency')
if lat:
    print("  latency us: min %.1f p50 %.1f p99 %.1f max %.1f" % (lat['min_us'], lat['p50_us'], lat['p99_us'], lat['max_us']))
why = {
    "native": "plain data, native W3IP: forwarded A -> tunnel -> B",
    "tunnel": "plain data in UDP/5733 from a host bound over UDP: forwarded",
    "signed": "AUTH on every packet: verified in batches, but one source gets 2000/s (then signature_shed)",
    "bind": "signed BINDs: consumed by A (the first of each sequence), replays bind_rejected",
    "invalid": "malformed: bad_version, truncated, hop_limit_expired, bad_checksum, bad_extension",
    "spoofed": "a source nobody bound: spoofed_source",
    "badsig": "AUTH with a flipped bit: bad_signature (and the source becomes a suspect)",
}
for k, v in r['classes'].items():
    ratio = v['received'] / v['sent'] if v['sent'] else 0
    print("  %-8s sent %10d back %10d (%5.1f %%)  %s" % (k, v['sent'], v['received'], 100 * ratio, why.get(k, "")))
bob = open(os.path.join(w, 'bob.out')).read().strip()
print("alice.eth ping from bob: " + bob)
print("=========================================================")
PY
say "stopping: generator loops (done), routers, generator ports, anvil, namespaces"
STATUS=0
