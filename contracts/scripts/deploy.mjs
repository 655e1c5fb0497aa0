// contracts/deploy: deploys the ENS registry + public resolver, the ERC-1056 DID registry and
// SegmentLicense from the artifacts in out/, and writes where they are as JSON.
import path from 'node:path';
import { ethers } from 'ethers';
import { artifactPath, loadArtifact, mined, parseFlags, provider, requireKey, writeJson, UsageError } from './lib.mjs';

const USAGE = `usage: contracts/deploy --rpc URL --key HEX [--out deployment.json] [--admin ADDRESS]

Deploys ENSRegistry, PublicResolver(ENSRegistry), EthereumDIDRegistry and
SegmentLicense(admin) with the key's account and writes their addresses, transaction hashes,
deployment block, chain id and artifact paths to --out.

  --rpc URL        Ethereum JSON-RPC endpoint (default http://127.0.0.1:8545)
  --key HEX        deployer private key (or env DEPLOYER_KEY); it owns the ENS root node
  --out FILE       where to write the deployment JSON (default deployment.json)
  --admin ADDRESS  SegmentLicense admin and first allocator (default: the deployer)`;

async function main() {
  const f = parseFlags(process.argv.slice(2), { known: ['rpc', 'key', 'out', 'admin'], usage: USAGE });
  const rpc = f.rpc || 'http://127.0.0.1:8545';
  const keyHex = f.key || process.env.DEPLOYER_KEY;
  if (!keyHex) throw new UsageError('--key is required', USAGE);
  const out = f.out || 'deployment.json';
  const p = provider(rpc);
  const signer = new ethers.NonceManager(new ethers.Wallet(requireKey(keyHex, '--key'), p));
  const deployer = await signer.getAddress();
  const admin = f.admin ? ethers.getAddress(f.admin) : deployer;
  const { chainId } = await p.getNetwork();

  const contracts = {};
  async function deploy(name, args) {
    const a = loadArtifact(name);
    const factory = new ethers.ContractFactory(a.abi, a.bytecode.object, signer);
    const c = await factory.deploy(...args);
    const tx = c.deploymentTransaction();
    const rcpt = await tx.wait();
    if (!rcpt || rcpt.status !== 1) throw new Error(`${name}: deployment failed`);
    const address = await c.getAddress();
    contracts[name] = {
      address,
      tx: tx.hash,
      block: rcpt.blockNumber,
      gasUsed: Number(rcpt.gasUsed),
      artifact: artifactPath(name),
    };
    console.log(`deploy: ${name} at ${address} (block ${rcpt.blockNumber}, gas ${rcpt.gasUsed})`);
    return c;
  }

  const ens = await deploy('ENSRegistry', []);
  await deploy('PublicResolver', [await ens.getAddress()]);
  await deploy('EthereumDIDRegistry', []);
  await deploy('SegmentLicense', [admin]);

  // Sanity: code is there and the registry's root node belongs to the deployer.
  for (const [name, c] of Object.entries(contracts)) {
    if ((await p.getCode(c.address)) === '0x') throw new Error(`${name}: no code at ${c.address}`);
  }
  const rootOwner = await ens.owner(ethers.ZeroHash);
  if (rootOwner !== deployer) throw new Error(`ENS root owner is ${rootOwner}, expected ${deployer}`);

  const blocks = Object.values(contracts).map((c) => c.block);
  const deployment = {
    chainId: Number(chainId),
    rpc,
    deployer,
    admin,
    deploymentBlock: Math.min(...blocks),
    lastBlock: Math.max(...blocks),
    artifactsDir: path.dirname(artifactPath('SegmentLicense')),
    contracts,
  };
  writeJson(out, deployment);
  console.log(`deploy: wrote ${out} (chain ${chainId}, from block ${deployment.deploymentBlock})`);
  p.destroy();
}

main().catch((e) => {
  console.error(`deploy: ${e.message || e}`);
  process.exit(e instanceof UsageError ? 2 : 1);
});
