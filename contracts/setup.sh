#!/usr/bin/env bash
# contracts setup: npm dependencies (pinned by package-lock.json, installed only when missing or
# when the lock changed) and the artifacts in out/ (rebuilt from the pinned compilers).
# Needs node >= 18 and npm, and the npm registry; nothing else from the network.
set -euo pipefail
cd "$(dirname "$0")"

command -v node >/dev/null || { echo "contracts/setup: node is missing (Node.js 20 expected)" >&2; exit 1; }
command -v npm >/dev/null || { echo "contracts/setup: npm is missing" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "contracts/setup: node $(node --version) is too old (need >= 18, 20 expected)" >&2
  exit 1
fi

stamp=node_modules/.chainroute-lock.sha256
want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "contracts/setup: npm ci"
  # Scripts stay off: the foundry binaries come from their per-platform npm packages.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

arch=$(node -p '({x64: "amd64", arm64: "arm64"})[process.arch] || process.arch')
for tool in forge anvil cast; do
  bin="node_modules/@foundry-rs/$tool-linux-$arch/bin/$tool"
  if [ ! -x "$bin" ]; then
    echo "contracts/setup: $bin is missing (no foundry package for this platform?)" >&2
    exit 1
  fi
done

./build
echo "contracts/setup: ok"
