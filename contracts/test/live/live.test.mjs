// Live test: a real anvil on a free port, contracts/deploy and contracts/seed as an operator
// runs them, then every read the router's chain reconciler does, over JSON-RPC:
// ENS (namehash -> registry -> resolver -> addr), the DID attribute from
// DIDAttributeChanged events, SegmentLicense views and a rebuild from logs; then the rules
// once more on chain, and the gas of each call from receipts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { ethers } from 'ethers';
import {
  DID_ED25519_NAME,
  ROOT,
  decodeEndpoints,
  demoKey,
  foundryBin,
  formatPrefix,
  loadArtifact,
  namehash,
  parsePrefix,
  provider,
  readJson,
  writeJson,
} from '../../scripts/lib.mjs';

const run = promisify(execFile);
const WORK = process.env.LIVE_DIR || path.join(ROOT, '.live');
const DEPLOYER = demoKey(0);

let anvil;
let rpc;
let p;
let dep;
let seed;
const gas = {}; // call -> gas used (from receipts)

function stopAnvil() {
  if (anvil && anvil.exitCode === null && anvil.signalCode === null) anvil.kill('SIGKILL');
}
process.on('exit', stopAnvil); // also when a test or a hook fails

async function startAnvil() {
  fs.mkdirSync(WORK, { recursive: true });
  const log = fs.createWriteStream(path.join(WORK, 'anvil.log'));
  anvil = spawn(foundryBin('anvil'), ['--port', '0', '--host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  anvil.stderr.pipe(log);
  fs.writeFileSync(path.join(WORK, 'anvil.pid'), `${anvil.pid}\n`); // test.sh's safety net
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('anvil did not print Listening within 30 s')), 30000);
    anvil.on('exit', (code) => reject(new Error(`anvil exited early (${code})`)));
    anvil.stdout.on('data', (d) => {
      log.write(d);
      buf += d.toString();
      const m = /Listening on (127\.0\.0\.1:\d+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        anvil.stdout.removeAllListeners('data');
        anvil.stdout.on('data', (x) => log.write(x));
        resolve(`http://${m[1]}`);
      }
    });
  });
}

const contract = (name, runner = p) => new ethers.Contract(dep.contracts[name].address, loadArtifact(name).abi, runner);
const signers = new Map(); // one nonce manager per key for the whole run
const signer = (key) => {
  if (!signers.has(key)) signers.set(key, new ethers.NonceManager(new ethers.Wallet(key, p)));
  return signers.get(key);
};

async function sendOk(what, promise) {
  const tx = await promise;
  const rcpt = await tx.wait();
  assert.equal(rcpt.status, 1, `${what} succeeded`);
  (gas[what] ||= []).push(Number(rcpt.gasUsed));
  return rcpt;
}

/// Expects a reverted call with the named SegmentLicense error.
async function rejects(lic, fn, errorName) {
  try {
    await fn();
  } catch (e) {
    const data = e.data || e.info?.error?.data;
    assert.ok(typeof data === 'string' && data.length >= 10, `revert data for ${errorName}: ${e.message}`);
    const parsed = lic.interface.parseError(data);
    assert.equal(parsed?.name, errorName);
    return parsed;
  }
  assert.fail(`expected ${errorName}`);
}

describe('live anvil: deploy + seed + reads over RPC', () => {
  before(async () => {
    rpc = await startAnvil();
    p = provider(rpc);
    p.pollingInterval = 50;
    const depFile = path.join(WORK, 'deployment.json');
    const seedFile = path.join(WORK, 'seed.json');
    await run(path.join(ROOT, 'deploy'), ['--rpc', rpc, '--key', DEPLOYER, '--out', depFile], { cwd: ROOT });
    await run(path.join(ROOT, 'seed'), ['--rpc', rpc, '--key', DEPLOYER, '--deployment', depFile, '--out', seedFile], { cwd: ROOT });
    dep = readJson(depFile);
    seed = readJson(seedFile);
  });

  after(async () => {
    if (p) p.destroy();
    stopAnvil();
    writeJson(path.join(WORK, 'gas.json'), gas);
  });

  test('deployment.json names all contracts, with code, chain id, block and artifacts', async () => {
    assert.equal(dep.chainId, 31337);
    assert.ok(dep.deploymentBlock >= 0 && dep.deploymentBlock <= dep.lastBlock);
    for (const name of ['ENSRegistry', 'PublicResolver', 'EthereumDIDRegistry', 'SegmentLicense']) {
      const c = dep.contracts[name];
      assert.ok(ethers.isAddress(c.address), `${name} address`);
      assert.notEqual(await p.getCode(c.address), '0x', `${name} has code`);
      const art = readJson(c.artifact);
      assert.ok(Array.isArray(art.abi) && art.bytecode.object.startsWith('0x'), `${name} artifact`);
      (gas[`deploy ${name}`] ||= []).push(c.gasUsed);
    }
    const lic = contract('SegmentLicense');
    assert.ok(await lic.hasRole(await lic.ALLOCATOR_ROLE(), dep.deployer), 'deployer is allocator');
  });

  test('ENS: alice.eth resolves by namehash -> registry.resolver -> resolver.addr', async () => {
    const name = seed.names[0].name;
    assert.equal(name, 'alice.eth');
    const node = namehash(name);
    assert.equal(node, ethers.namehash(name), 'our namehash agrees with ethers');
    assert.equal(node, '0x787192fc5378cc32aa956ddfdedbf26b24e8d78e40109add0eea2c1a012c3dec', 'EIP-137 value');
    const registry = contract('ENSRegistry');
    const resolverAddr = await registry.resolver(node);
    assert.equal(resolverAddr, dep.contracts.PublicResolver.address);
    const resolver = new ethers.Contract(resolverAddr, loadArtifact('PublicResolver').abi, p);
    const addr = await resolver['addr(bytes32)'](node);
    assert.equal(addr, seed.wallets[0].address);
    assert.equal(await registry.owner(node), seed.wallets[0].address, 'the wallet owns its name');
    assert.ok(await resolver.supportsInterface('0x3b3b57de'), 'resolver speaks addr(bytes32)');
    // The same through ethers' own ENS client pointed at this registry.
    const net = new ethers.Network('anvil', 31337);
    net.attachPlugin(new ethers.EnsPlugin(dep.contracts.ENSRegistry.address, 31337));
    const p2 = new ethers.JsonRpcProvider(rpc, net, { staticNetwork: net, cacheTimeout: -1 });
    assert.equal(await p2.resolveName(name), seed.wallets[0].address);
    p2.destroy();
  });

  test('DID: the Ed25519 device key comes back from DIDAttributeChanged events', async () => {
    const registry = contract('EthereumDIDRegistry');
    const identity = seed.wallets[0].address;
    const want = seed.devices[0].publicKey;
    // ERC-1056 reading: follow changed[identity] -> previousChange through the logs.
    const found = [];
    let block = Number(await registry.changed(identity));
    assert.ok(block > 0, 'identity has changes');
    const topic = registry.interface.getEvent('DIDAttributeChanged').topicHash;
    while (block > 0) {
      const logs = await p.getLogs({
        address: dep.contracts.EthereumDIDRegistry.address,
        topics: [topic, ethers.zeroPadValue(identity, 32)],
        fromBlock: block,
        toBlock: block,
      });
      let prev = 0;
      for (const l of logs) {
        const ev = registry.interface.parseLog(l);
        found.push({ ...ev.args.toObject(), block: l.blockNumber });
        prev = Number(ev.args.previousChange);
      }
      assert.ok(logs.length > 0, `logs at block ${block}`);
      block = prev;
    }
    const attr = found.find((a) => a.name === DID_ED25519_NAME);
    assert.ok(attr, 'did/pub/Ed25519/veriKey/base64 present');
    assert.equal(ethers.decodeBytes32String(attr.name), 'did/pub/Ed25519/veriKey/base64');
    assert.equal(attr.value, want, 'value is the 32-byte device key');
    const now = (await p.getBlock('latest')).timestamp;
    assert.ok(Number(attr.validTo) > now, 'still valid');
    assert.equal(Number(attr.validTo), seed.dids[0].validTo);
    assert.equal(ethers.getBytes(attr.value).length, 32);
    assert.equal(await registry.identityOwner(identity), identity);
  });

  test('SegmentLicense: isValid, segment, router and holders over RPC match seed.json', async () => {
    const lic = contract('SegmentLicense');
    assert.ok(seed.segments.length >= 3);
    for (const s of seed.segments) {
      assert.equal(await lic.isValid(s.id), true, `#${s.id} valid`);
      const [prefix, prefixLen, parentId, expiry, revoked] = await lic.segment(s.id);
      assert.equal(prefix, s.prefixHex);
      assert.equal(Number(prefixLen), s.prefixLen);
      assert.equal(Number(parentId), s.parentId);
      assert.equal(Number(expiry), s.expiry);
      assert.equal(revoked, false);
      assert.equal(formatPrefix(prefix, Number(prefixLen)), s.prefix);
      assert.equal(await lic.ownerOf(s.id), s.holder);
      const [key, eps] = await lic.router(s.id);
      if (s.routerKey) {
        assert.equal(key, s.routerKey);
        assert.equal(eps, s.endpointsEncoded);
        assert.deepEqual(decodeEndpoints(eps).map((e) => e.text), s.endpoints.map((e) => e.text));
      }
    }
    const child = seed.segments.find((s) => s.parentId !== 0);
    assert.equal(child.prefix, '2001:db8::/32');
    assert.deepEqual(decodeEndpoints((await lic.router(child.id))[1]).map((e) => e.text), ['127.0.0.1:5734']);
    const rootA = seed.segments.find((s) => s.prefix === '2001::/16');
    assert.deepEqual(decodeEndpoints((await lic.router(rootA.id))[1]).map((e) => e.text), ['127.0.0.1:5733']);
    assert.equal(Number(await lic.totalSupply()), seed.segments.length);
    assert.equal(await lic.isValid(999), false);
  });

  test('SegmentLicense: the state rebuilt from logs alone equals the views', async () => {
    const lic = contract('SegmentLicense');
    const logs = await p.getLogs({ address: dep.contracts.SegmentLicense.address, fromBlock: dep.deploymentBlock, toBlock: 'latest' });
    const state = new Map();
    for (const l of logs) {
      const ev = lic.interface.parseLog(l);
      if (!ev) continue;
      const id = ev.args.id ?? ev.args.tokenId;
      const s = state.get(id) || {};
      if (ev.name === 'SegmentIssued') Object.assign(s, { prefix: ev.args.prefix, prefixLen: ev.args.prefixLen, parentId: ev.args.parentId, expiry: ev.args.expiry, revoked: false });
      if (ev.name === 'SegmentRevoked') s.revoked = true;
      if (ev.name === 'SegmentRenewed') s.expiry = ev.args.expiry;
      if (ev.name === 'RouterSet') Object.assign(s, { routerKey: ev.args.routerKey, endpoints: ev.args.endpoints });
      if (ev.name === 'Transfer') s.holder = ev.args.to;
      if (id !== undefined) state.set(id, s);
    }
    assert.equal(state.size, seed.segments.length);
    for (const [id, s] of state) {
      const [prefix, prefixLen, parentId, expiry, revoked] = await lic.segment(id);
      assert.deepEqual([prefix, prefixLen, parentId, expiry, revoked], [s.prefix, s.prefixLen, s.parentId, s.expiry, s.revoked]);
      assert.equal(await lic.ownerOf(id), s.holder);
      const [key, eps] = await lic.router(id);
      assert.equal(key, s.routerKey ?? ethers.ZeroHash);
      assert.equal(eps, s.endpoints ?? '0x');
    }
  });

  test('SegmentLicense: the rules hold on chain (named errors over RPC)', async () => {
    const opA = signer(demoKey(1));
    const opB = signer(demoKey(2));
    const lic = contract('SegmentLicense', opA);
    const rootA = seed.segments.find((s) => s.prefix === '2001::/16');
    const child = seed.segments.find((s) => s.prefix === '2001:db8::/32');
    const inside = parsePrefix('2001:db8:1::/48');
    const exp = rootA.expiry;
    const opBAddr = await opB.getAddress();
    // Overlap with a live sibling, both ways.
    let e = await rejects(lic, () => lic.subdivide.staticCall(rootA.id, inside.prefix, 48, opBAddr, exp), 'OverlapsSibling');
    assert.equal(Number(e.args[0]), child.id);
    const around = parsePrefix('2001:d00::/24');
    await rejects(lic, () => lic.subdivide.staticCall(rootA.id, around.prefix, 24, opBAddr, exp), 'OverlapsSibling');
    // Outside the parent, host bits, wrong holder, expiry past the parent.
    const other = parsePrefix('2002:1::/32');
    await rejects(lic, () => lic.subdivide.staticCall(rootA.id, other.prefix, 32, opBAddr, exp), 'NotInsideParent');
    await rejects(lic, () => lic.subdivide.staticCall(rootA.id, inside.prefix, 16, opBAddr, exp), 'HostBitsSet');
    await rejects(lic, () => lic.connect(opB).subdivide.staticCall(rootA.id, parsePrefix('2001:db9::/32').prefix, 32, opBAddr, exp), 'NotHolder');
    await rejects(lic, () => lic.subdivide.staticCall(rootA.id, parsePrefix('2001:db9::/32').prefix, 32, opBAddr, exp + 1), 'ExpiryAfterParent');
    // Roots never overlap; only the allocator issues them.
    const alloc = contract('SegmentLicense', signer(DEPLOYER));
    await rejects(alloc, () => alloc.issueRoot.staticCall(parsePrefix('2000::/8').prefix, 8, opBAddr, exp), 'OverlapsSibling');
    await assert.rejects(lic.issueRoot.staticCall(parsePrefix('3001::/16').prefix, 16, opBAddr, exp));
  });

  test('SegmentLicense: transfer, subdivide by the new holder, revoke and expiry over RPC', async () => {
    const opA = signer(demoKey(1));
    const opB = signer(demoKey(2));
    const carol = new ethers.Wallet(demoKey(4), p);
    const lic = contract('SegmentLicense', opB);
    const child = seed.segments.find((s) => s.prefix === '2001:db8::/32'); // held by op-b
    const now = (await p.getBlock('latest')).timestamp;
    // op-b subdivides its child; then sells the grandchild to carol, who subdivides it again.
    const g = parsePrefix('2001:db8:1::/48');
    let rcpt = await sendOk('subdivide', lic.subdivide(child.id, g.prefix, 48, await opB.getAddress(), now + 3600));
    const gid = lic.interface.parseLog(rcpt.logs.find((l) => l.topics[0] === lic.interface.getEvent('SegmentIssued').topicHash)).args.id;
    await sendOk('setRouter', lic.setRouter(gid, ethers.id('router'), seed.segments[0].endpointsEncoded));
    await sendOk('transferFrom', lic.transferFrom(await opB.getAddress(), carol.address, gid));
    assert.equal((await lic.router(gid))[1], '0x', 'a transfer clears the router');
    await (await signer(DEPLOYER).sendTransaction({ to: carol.address, value: ethers.parseEther('1') })).wait();
    const licC = lic.connect(signer(carol.privateKey));
    const gg = parsePrefix('2001:db8:1:2::/64');
    await rejects(lic, () => lic.subdivide.staticCall(gid, gg.prefix, 64, carol.address, now + 60), 'NotHolder');
    rcpt = await sendOk('subdivide', licC.subdivide(gid, gg.prefix, 64, carol.address, now + 60));
    const ggid = gid + 1n;
    assert.equal(await lic.isValid(ggid), true);
    await sendOk('renew', lic.renew(gid, now + 1800));
    // Revoking the middle kills its subtree, not the rest.
    await sendOk('revoke', lic.revoke(gid));
    assert.equal(await lic.isValid(gid), false);
    assert.equal(await lic.isValid(ggid), false, 'descendant of a revoked segment');
    assert.equal(await lic.isValid(child.id), true);
    // The space is free again.
    await sendOk('subdivide', lic.subdivide(child.id, g.prefix, 48, await opB.getAddress(), now + 3600));
    // Expiry, seen through the chain clock.
    await p.send('evm_increaseTime', [3601]);
    await p.send('evm_mine', []);
    assert.equal(await lic.isValid(gid + 2n), false, 'expired');
    assert.equal(await lic.isValid(child.id), true);
    // Renewal of the root by the allocator; roots only by the allocator.
    const rootA = seed.segments.find((s) => s.prefix === '2001::/16');
    const alloc = contract('SegmentLicense', signer(DEPLOYER));
    await sendOk('renew', alloc.renew(rootA.id, rootA.expiry + 86400));
    await rejects(lic, () => lic.connect(opA).renew.staticCall(rootA.id, rootA.expiry + 2), 'NotParentHolder');
  });

  test('SegmentLicense: worst-case subdivide stays under 300k gas on chain', async () => {
    const alloc = contract('SegmentLicense', signer(DEPLOYER));
    const me = dep.deployer;
    const now = (await p.getBlock('latest')).timestamp;
    const exp = now + 86400;
    const root = parsePrefix('3000::/16');
    let rcpt = await sendOk('issueRoot', alloc.issueRoot(root.prefix, 16, me, exp));
    const rid = alloc.interface.parseLog(rcpt.logs.find((l) => l.topics[0] === alloc.interface.getEvent('SegmentIssued').topicHash)).args.id;
    const depth = Number(await alloc.MAX_SIBLING_DEPTH());
    const base = BigInt(root.prefix);
    // Skewed siblings 1, 01, 001, ... (below the /16): each new one walks the whole index.
    for (let k = 1; k <= depth + 1; k++) {
      const pre = ethers.toBeHex(base | (1n << BigInt(256 - 16 - k)), 32);
      await sendOk('subdivide (skewed build-up)', alloc.subdivide(rid, pre, 16 + k, me, exp));
    }
    const worst = ethers.toBeHex(base | (1n << BigInt(256 - 16 - depth - 2)), 32);
    const fresh = ethers.Wallet.createRandom().address; // first token for this holder: costliest
    rcpt = await sendOk('subdivide worst case', alloc.subdivide(rid, worst, 256, fresh, exp));
    assert.ok(Number(rcpt.gasUsed) < 300000, `worst-case subdivide used ${rcpt.gasUsed}`);
    const deeper = ethers.toBeHex(base | (1n << BigInt(256 - 16 - depth - 3)), 32);
    await rejects(alloc, () => alloc.subdivide.staticCall(rid, deeper, 256, me, exp), 'SiblingIndexTooDeep');
    // A /0 root is possible only on an empty space; lengths 0 and 256 are checked in forge tests.
    await sendOk('revoke', alloc.revoke(rid));
  });

  test('seed gas figures are recorded', () => {
    for (const [k, v] of Object.entries(seed.gas)) (gas[k] ||= []).push(...v);
    assert.ok(gas.issueRoot.length && gas.subdivide.length && gas.setRouter.length);
  });
});
