#!/usr/bin/env bash
# Checks the W3IP Lua dissector with tshark: chainroute-pktgen writes a capture of
# every frame kind (native, UDP-tunnelled, AUTH-signed, BIND, invalid, spoofed,
# anycast destinations) and a manifest of the fields the Rust wire crate reads in
# each frame; tshark decodes the capture with tools/wireshark/w3ip.lua and every
# field must match: header fields, addresses in canonical W3IP text, wallets, and
# the AUTH and BIND fields. Takes a few seconds (plus a build when needed).
#   tools/wireshark/test.sh [capture.pcap]   (a given capture is only decoded, not checked)
set -euo pipefail
cd "$(dirname "$0")/../.."
LUA=tools/wireshark/w3ip.lua
command -v tshark >/dev/null || { echo "wireshark test: tshark missing (scripts/setup.sh installs it)"; exit 1; }
W=$(mktemp -d /tmp/w3ip-dissector.XXXXXX)
trap 'rm -rf "$W"' EXIT
TSHARK=(tshark -o "gui.column.format:No.,%m" -X "lua_script:$LUA" -n)

if [ $# -ge 1 ]; then
  "${TSHARK[@]}" -r "$1" -V -Y w3ip
  exit 0
fi

cargo build -q -p chainroute-perf --bin chainroute-pktgen
PG=${CARGO_TARGET_DIR:-target}/debug/chainroute-pktgen
"$PG" --write-pcap "$W/w3ip.pcap" --manifest "$W/manifest.json" --count 96 --pool 96 --size 160 \
  --dst "2002::/16,::/96,2001:db8:ffff::/48" --mix native=4,tunnel=3,signed=2,bind=2,invalid=2,spoofed=1,badsig=1 \
  --wallet 0x1111111111111111111111111111111111111111 --tunnel-wallet 0x2222222222222222222222222222222222222222 \
  --device-seed 0707070707070707070707070707070707070707070707070707070707070707 --locator 2001:0:0:6e:: \
  --tunnel-src 10.3.0.2:40000 --tunnel-dst 10.3.0.1:5733 2>/dev/null

FIELDS=(frame.number w3ip.version w3ip.tclass w3ip.flow w3ip.plen w3ip.nxt w3ip.hlim w3ip.src w3ip.dst
  w3ip.src.wallet w3ip.dst.wallet w3ip.dst.anycast w3ip.auth.key w3ip.auth.sig
  w3ip.bind.wallet w3ip.bind.unicast w3ip.bind.expiry w3ip.bind.seq w3ip.bind.key w3ip.bind.sig w3ip.stamp.class)
args=(); for x in "${FIELDS[@]}"; do args+=(-e "$x"); done
"${TSHARK[@]}" -r "$W/w3ip.pcap" -T fields -E separator=/t -E occurrence=f "${args[@]}" >"$W/fields.tsv" 2>"$W/tshark.err"
if [ -s "$W/tshark.err" ]; then cat "$W/tshark.err"; fi

python3 - "$W/manifest.json" "$W/fields.tsv" "${FIELDS[@]}" <<'PY'
import json, sys
manifest = json.load(open(sys.argv[1]))
names = sys.argv[3:]
rows = [dict(zip(names, l.rstrip("\n").split("\t"))) for l in open(sys.argv[2])]
assert len(rows) == len(manifest), f"{len(rows)} frames decoded, {len(manifest)} written"
BYTES = {"w3ip.auth.key", "w3ip.auth.sig", "w3ip.bind.key", "w3ip.bind.sig"}
def norm(k, v):
    v = v.strip()
    if k in BYTES:
        v = v.replace(":", "")  # some tshark versions print bytes as aa:bb:..
    return {"true": "1", "false": "0"}.get(v.lower(), v)
checked = {"header": 0, "auth": 0, "bind": 0, "anycast": 0, "tunnel": 0}
bad = []
for i, (m, r) in enumerate(zip(manifest, rows), 1):
    if not m["w3ip"]:
        continue  # invalid on purpose (the Rust parser refused it); tshark may still show it
    want = {"w3ip.version": m["version"], "w3ip.tclass": m["tclass"], "w3ip.flow": m["flow"], "w3ip.plen": m["plen"],
            "w3ip.nxt": m["nxt"], "w3ip.hlim": m["hlim"], "w3ip.src": m["src"], "w3ip.dst": m["dst"],
            "w3ip.src.wallet": m["src_wallet"], "w3ip.dst.wallet": m["dst_wallet"], "w3ip.dst.anycast": 1 if m["dst_anycast"] else 0}
    if "auth" in m:
        want.update({"w3ip.auth.key": m["auth"]["key"], "w3ip.auth.sig": m["auth"]["sig"]}); checked["auth"] += 1
    if "bind" in m:
        b = m["bind"]
        want.update({"w3ip.bind.wallet": b["wallet"], "w3ip.bind.unicast": b["unicast"], "w3ip.bind.expiry": b["expiry"],
                     "w3ip.bind.seq": b["seq"], "w3ip.bind.key": b["key"], "w3ip.bind.sig": b["sig"]}); checked["bind"] += 1
    checked["header"] += 1
    checked["anycast"] += bool(m["dst_anycast"])
    checked["tunnel"] += m["carrier"].startswith("udp")
    for k, v in want.items():
        got = norm(k, r.get(k, ""))
        exp = str(v).lower() if isinstance(v, str) else str(v)
        if k in ("w3ip.tclass", "w3ip.flow") and got.startswith("0x"):
            got = str(int(got, 16))
        if got.lower() != exp.lower():
            bad.append(f"frame {i} {k}: tshark {got!r}, wire crate {exp!r}")
for b in bad[:20]:
    print("MISMATCH", b)
summary = ", ".join(f"{k} {v}" for k, v in checked.items())
if bad or min(checked.values()) == 0:
    print(f"wireshark dissector: FAILED ({len(bad)} mismatches; checked {summary})")
    sys.exit(1)
print(f"wireshark dissector: ok, every field matches the wire crate ({len(manifest)} frames; checked {summary})")
PY
# The text tree of one BIND and one AUTH frame, for the log.
"${TSHARK[@]}" -r "$W/w3ip.pcap" -V -Y "w3ip.bind" -c 1 2>/dev/null | sed -n '/^W3IP/,$p' | head -40
