#!/usr/bin/env bash
# Bounded fuzz runs of the parsers (libFuzzer through cargo-fuzz; RUSTC_BOOTSTRAP lets
# the stable toolchain take the sanitizer flags). FUZZ_SECONDS per target (default 60).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
secs="${FUZZ_SECONDS:-60}"
mkdir -p corpus
for target in $(cargo fuzz list); do
  echo "fuzz: $target for ${secs}s"
  mkdir -p "corpus/$target"
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$secs" -max_len=2048 -print_final_stats=1 2>&1 | tail -n 12
  # cargo fuzz exits non-zero on a crash; pipefail carries it.
done
echo "fuzz: no crash found"
