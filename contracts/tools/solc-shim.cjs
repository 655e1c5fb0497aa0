#!/usr/bin/env node
// Minimal `solc` command-line stand-in around solcjs, for forge offline.
// forge only ever runs `solc --version` and `solc [flags] --standard-json` (JSON on stdin).
// The solcjs package is picked by SOLC_SHIM_PACKAGE (default "solc", the pinned 0.8 compiler).
'use strict';
const fs = require('fs');
const path = require('path');

const pkg = process.env.SOLC_SHIM_PACKAGE || 'solc';
const solc = require(require.resolve(pkg, { paths: [path.join(__dirname, '..')] }));
const args = process.argv.slice(2);

if (args.includes('--version') || args.includes('-v')) {
  // Native format: "Version: 0.8.28+commit.7893614a.Linux.g++".
  const v = solc.version().replace(/\.Emscripten\.clang$/, '.Linux.g++');
  process.stdout.write('solc, the solidity compiler commandline interface\nVersion: ' + v + '\n');
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
  process.exit(2);
}

// Import roots: --base-path, --include-path (repeatable), then the working directory.
const roots = [];
for (let i = 0; i < args.length; i++) {
  if ((args[i] === '--base-path' || args[i] === '--include-path') && args[i + 1]) roots.push(args[++i]);
}
roots.push(process.cwd());

function findImports(p) {
  const candidates = path.isAbsolute(p) ? [p] : roots.map((r) => path.resolve(r, p));
  for (const c of candidates) {
    try { return { contents: fs.readFileSync(c, 'utf8') }; } catch (_) { /* next */ }
  }
  return { error: 'File not found: ' + p };
}

const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
