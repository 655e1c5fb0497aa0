#!/usr/bin/env bash
# Checks the pcap profiles and the W3IP Wireshark dissector (run by `make test`):
#  1. make-profiles.sh rewrites every profile into a scratch dir: byte-identical to
#     the committed ones (the profiles are what the tool makes today);
#  2. tshark (with tools/wireshark/w3ip.lua) decodes every frame of every profile as
#     W3IP with the expected class counts, and no malformed frame outside the
#     invalid classes;
#  3. tools/wireshark/test.sh: every dissector field equals what the wire crate reads.
# Takes well under a minute (the pcap replays through DPDK are perf/tests/pktgen_profiles.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
P=perf/pktgen/profiles
LUA=tools/wireshark/w3ip.lua
W=$(mktemp -d /tmp/pktgen-check.XXXXXX)
trap 'rm -rf "$W"' EXIT
perf/pktgen/make-profiles.sh "$W" >/dev/null
fail=0
for f in "$W"/*.pcap; do
  n=$(basename "$f")
  if ! cmp -s "$f" "$P/$n"; then echo "profiles: $n differs from what make-profiles.sh writes now (rerun it)"; fail=1; fi
done
# One tshark pass per profile: per frame, whether it is W3IP, has AUTH/BIND/a stamp, is malformed.
fields() {
  tshark -X "lua_script:$LUA" -n -r "$1" -T fields -E separator=/t -E occurrence=f \
    -e frame.number -e w3ip.version -e w3ip.auth.key -e w3ip.bind.wallet -e w3ip.stamp.class -e _ws.expert.severity -e _ws.malformed 2>/dev/null
}
for f in "$P"/*.pcap; do
  n=$(basename "$f" .pcap)
  read -r total w3 auth bind stamp bad < <(fields "$f" | awk -F'\t' '
    { t++; if ($2 != "") w++; if ($3 != "") a++; if ($4 != "") b++; if ($5 != "") s++;
      # expert severity: 8388608 = error (Wireshark 4.x); malformed frames carry _ws.malformed
      if ($7 != "" || ($6 != "" && $6 + 0 >= 8388608)) m++ }
    END { print t+0, w+0, a+0, b+0, s+0, m+0 }')
  printf '  %-18s frames %5d  w3ip %5d  auth %4d  bind %4d  stamped %5d  malformed %4d\n' "$n" "$total" "$w3" "$auth" "$bind" "$stamp" "$bad"
  case $n in
    w3ip-native-*|w3ip-tunnel-*) [ "$w3" -eq "$total" ] && [ "$stamp" -eq "$total" ] && [ "$bad" -eq 0 ] || { echo "  $n: every frame must be stamped W3IP"; fail=1; } ;;
    w3ip-signed) [ "$auth" -ge $((total - 2)) ] && [ "$bind" -eq 2 ] && [ "$bad" -eq 0 ] || { echo "  $n: AUTH frames after two BINDs expected"; fail=1; } ;;
    w3ip-mix) [ "$w3" -eq "$total" ] && [ "$auth" -gt 0 ] && [ "$bind" -gt 2 ] && [ "$bad" -gt 0 ] || { echo "  $n: a mix of every class expected"; fail=1; } ;;
    w3ip-invalid) [ "$bad" -gt 0 ] && [ "$auth" -gt 0 ] || { echo "  $n: malformed and bad-signature frames expected"; fail=1; } ;;
  esac
done
if tools/wireshark/test.sh >"$W/dissector.log" 2>&1; then grep "wireshark dissector" "$W/dissector.log"; else cat "$W/dissector.log"; fail=1; fi
[ $fail -eq 0 ] && echo "pktgen profiles and dissector: ok" || { echo "pktgen profiles and dissector: FAILED"; exit 1; }
