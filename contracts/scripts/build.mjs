// Compiles every contract chainroute deploys with the pinned solcjs compilers and writes
// forge-style artifacts (abi, bytecode.object, deployedBytecode.object) to out/<Name>.json.
//
//   build            write out/ (only files whose content changed)
//   build --check    compile and compare with out/; exit 1 when they differ
//
// Inputs are fixed (compiler versions from package-lock.json, settings below, sources from
// src/ and node_modules/), so the artifacts are byte-for-byte reproducible.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'package.json'));
const OUT = path.join(ROOT, 'out');

// Each job: one compiler, a set of entry sources, the contracts to keep.
const JOBS = [
  {
    compiler: 'solc', // 0.8.x, pinned in package.json
    settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: 'cancun' },
    sources: ['src/SegmentLicense.sol', 'ethr-did-registry/contracts/EthereumDIDRegistry.sol'],
    contracts: {
      SegmentLicense: 'src/SegmentLicense.sol',
      EthereumDIDRegistry: 'ethr-did-registry/contracts/EthereumDIDRegistry.sol',
    },
  },
  {
    compiler: 'solc-0.7', // npm:solc@0.7.6 for the ENS contracts (pragma ^0.7)
    settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: 'istanbul' },
    sources: ['@ensdomains/ens/contracts/ENSRegistry.sol', '@ensdomains/resolver/contracts/PublicResolver.sol'],
    contracts: {
      ENSRegistry: '@ensdomains/ens/contracts/ENSRegistry.sol',
      PublicResolver: '@ensdomains/resolver/contracts/PublicResolver.sol',
    },
  },
];

// Source unit names are project-relative (src/...) or package paths (@scope/pkg/...).
function locate(unit) {
  const local = path.join(ROOT, unit);
  if (unit.startsWith('src/') && fs.existsSync(local)) return local;
  const nm = path.join(ROOT, 'node_modules', unit);
  if (fs.existsSync(nm)) return nm;
  return null;
}

function findImports(unit) {
  const file = locate(unit);
  if (!file) return { error: `not found: ${unit}` };
  return { contents: fs.readFileSync(file, 'utf8') };
}

function compileJob(job) {
  const solc = require(job.compiler);
  const sources = {};
  for (const unit of job.sources) {
    const file = locate(unit);
    if (!file) throw new Error(`source not found: ${unit}`);
    sources[unit] = { content: fs.readFileSync(file, 'utf8') };
  }
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      ...job.settings,
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  if (errors.length) {
    throw new Error(`${job.compiler}: ${errors.map((e) => e.formattedMessage).join('\n')}`);
  }
  const artifacts = {};
  for (const [name, unit] of Object.entries(job.contracts)) {
    const c = output.contracts?.[unit]?.[name];
    if (!c) throw new Error(`${job.compiler}: no output for ${unit}:${name}`);
    artifacts[name] = {
      contractName: name,
      sourceName: unit,
      compiler: { version: solc.version(), settings: job.settings },
      abi: c.abi,
      bytecode: { object: '0x' + c.evm.bytecode.object },
      deployedBytecode: { object: '0x' + c.evm.deployedBytecode.object },
    };
  }
  return artifacts;
}

function main() {
  const check = process.argv.includes('--check');
  const built = {};
  for (const job of JOBS) Object.assign(built, compileJob(job));
  fs.mkdirSync(OUT, { recursive: true });
  let differ = 0;
  for (const [name, artifact] of Object.entries(built)) {
    const file = path.join(OUT, `${name}.json`);
    const text = JSON.stringify(artifact, null, 2) + '\n';
    const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (old === text) continue;
    differ++;
    if (check) {
      console.error(`build --check: out/${name}.json ${old === null ? 'is missing' : 'differs from a fresh build'}`);
    } else {
      fs.writeFileSync(file, text);
      console.log(`build: wrote out/${name}.json`);
    }
  }
  const names = Object.keys(built).join(', ');
  if (check && differ) {
    console.error('build --check: artifacts are stale; run ./build and commit out/');
    process.exit(1);
  }
  console.log(`build: ${check ? 'verified' : 'artifacts up to date:'} ${names}`);
}

main();
