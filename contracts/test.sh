#!/usr/bin/env bash
# contracts test suite, run by `make test`:
#   1. out/ matches a fresh build from the pinned compilers (reproducible artifacts)
#   2. forge tests of SegmentLicense (offline, no forge-std), with forge's gas report
#   3. the live test: anvil on a free port, deploy + seed, ENS/DID/license reads over RPC
# Prints a summary line "contracts: N passed, M failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")"

[ -d node_modules ] || ./setup.sh || exit 1

LIVE=.live
mkdir -p "$LIVE"
arch=$(node -p '({x64: "amd64", arm64: "arm64"})[process.arch] || process.arch')
FORGE="node_modules/@foundry-rs/forge-linux-$arch/bin/forge"
THREADS=${CONTRACTS_TEST_THREADS:-1} # the machine is shared with a Rust build

passed=0
failed=0

# Safety net: the live test kills its anvil itself; if node dies first, kill it here.
cleanup() {
  if [ -f "$LIVE/anvil.pid" ]; then
    pid=$(cat "$LIVE/anvil.pid")
    if [ -n "$pid" ] && grep -q anvil "/proc/$pid/cmdline" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
    rm -f "$LIVE/anvil.pid"
  fi
}
trap cleanup EXIT

echo "== contracts: artifacts reproducible from the pinned compilers"
if ./build --check; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

echo "== contracts: forge tests (with gas report)"
"$FORGE" test --gas-report -vv -j "$THREADS" 2>&1 | tee "$LIVE/forge.log"
forge_rc=${PIPESTATUS[0]}
# e.g. "Ran 2 test suites in 1.2s (...): 31 tests passed, 0 failed, 0 skipped (31 total tests)"
summary=$(grep -E '^Ran [0-9]+ test suites?' "$LIVE/forge.log" | tail -1)
fp=$(sed -nE 's/.* ([0-9]+) tests passed, ([0-9]+) failed.*/\1/p' <<<"$summary")
ff=$(sed -nE 's/.* ([0-9]+) tests passed, ([0-9]+) failed.*/\2/p' <<<"$summary")
if [ -z "$fp" ]; then
  echo "contracts: could not read forge's summary line (exit status $forge_rc)" >&2
  fp=0
  ff=1
fi
if [ "$forge_rc" -ne 0 ] && [ "$ff" -eq 0 ]; then ff=1; fi # e.g. a compile error
passed=$((passed + fp))
failed=$((failed + ff))

echo "== contracts: live test on anvil (deploy + seed + RPC reads)"
node --test --test-reporter=spec test/live/ 2>&1 | tee "$LIVE/live.log"
live_rc=${PIPESTATUS[0]}
lp=$(sed -nE 's/^ℹ pass ([0-9]+)$/\1/p' "$LIVE/live.log" | tail -1)
lf=$(sed -nE 's/^ℹ fail ([0-9]+)$/\1/p' "$LIVE/live.log" | tail -1)
lp=${lp:-0}
lf=${lf:-0}
if [ "$live_rc" -ne 0 ] && [ "$lf" -eq 0 ]; then lf=1; fi
passed=$((passed + lp))
failed=$((failed + lf))

if [ -f "$LIVE/gas.json" ]; then
  echo "== contracts: gas per call, from anvil receipts (min / max over the calls made)"
  node -e '
    const g = require(process.argv[1]);
    for (const [k, v] of Object.entries(g)) {
      const lo = Math.min(...v), hi = Math.max(...v);
      console.log(`  ${k.padEnd(32)} ${String(lo).padStart(9)} ${lo === hi ? "" : String(hi).padStart(9)}`);
    }' "$PWD/$LIVE/gas.json"
fi

echo "contracts: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
