// contracts/seed: demo state for the lab and the tests. Issues segment licenses with routers
// for operators, registers ENS names for a wallet and authorises an Ed25519 device key for it
// in the ERC-1056 registry; writes what it did as JSON.
import { ethers } from 'ethers';
import {
  DID_ED25519_ATTRIBUTE,
  DID_ED25519_NAME,
  demoKey,
  demoSeed,
  ed25519Public,
  encodeEndpoints,
  hex32,
  labelhash,
  loadArtifact,
  mined,
  namehash,
  parseEndpoint,
  parseFlags,
  parsePrefix,
  provider,
  readJson,
  requireKey,
  writeJson,
  UsageError,
} from './lib.mjs';

const USAGE = `usage: contracts/seed --rpc URL --key HEX --deployment deployment.json [options]

Every option has a demo default (two operators, alice.eth, one device key).

  --rpc URL             JSON-RPC endpoint (default http://127.0.0.1:8545)
  --key HEX             allocator key: issues roots, owns the ENS 'eth' node, relays the signed
                        DID attribute (env DEPLOYER_KEY; default: the deployer of --deployment
                        must be this key)
  --deployment FILE     output of contracts/deploy (required)
  --out FILE            where to write what was done (default seed.json)
  --operator SPEC       repeatable; SPEC is comma-separated key=value:
                          name=NAME            label used in --child and in the output
                          key=HEX              the operator's wallet key
                          root=PREFIX/LEN      root segment issued to it, e.g. 2001::/16
                          endpoints=LIST       router endpoints, '+' or ';' separated:
                                               127.0.0.1:5733+[::1]:5733
                          router-key=HEX       router Ed25519 public key (default: derived from
                                               a demo seed, written to the output)
                        default: name=op-a,key=<demo #1>,root=2001::/16,endpoints=127.0.0.1:5733
                        and      name=op-b,key=<demo #2>,root=2002::/16,
                                 endpoints=127.0.0.1:5734+[::1]:5734
  --child SPEC          repeatable: parent=OPERATOR|PREFIX/LEN,prefix=PREFIX/LEN,to=OPERATOR|0xADDR
                          [,endpoints=LIST] (the router is set by 'to' when it is an operator)
                        default: parent=op-a,prefix=2001:db8::/32,to=op-b,endpoints=127.0.0.1:5734
  --expiry-days N       license lifetime from the chain's clock (default 365)
  --wallet-key HEX      the wallet that gets the names and the device key (default: demo #3)
  --name NAME[=0xADDR]  repeatable ENS name for the wallet (or the given address);
                        default alice.eth
  --device-key HEX      Ed25519 public key (32 bytes) to authorise for the wallet
  --device-seed HEX     or the 32-byte Ed25519 seed to derive it from (default: a demo seed)
  --did-validity SECS   validity of the DID attribute (default 31536000)
  --did-mode MODE       signed (setAttributeSigned, relayed by --key; default) or direct
                        (setAttribute sent by the wallet itself)
  --fund-eth ETH        top up operators and the wallet below this balance (default 1; 0: off)`;

const DEFAULT_OPERATORS = [
  `name=op-a,key=${demoKey(1)},root=2001::/16,endpoints=127.0.0.1:5733`,
  `name=op-b,key=${demoKey(2)},root=2002::/16,endpoints=127.0.0.1:5734+[::1]:5734`,
];
const DEFAULT_CHILDREN = ['parent=op-a,prefix=2001:db8::/32,to=op-b,endpoints=127.0.0.1:5734'];

function parseSpec(spec, allowed, what) {
  const out = {};
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new Error(`${what}: '${part}' is not key=value`);
    const k = part.slice(0, eq).trim();
    if (!allowed.includes(k)) throw new Error(`${what}: unknown key '${k}' (allowed: ${allowed.join(', ')})`);
    out[k] = part.slice(eq + 1).trim();
  }
  return out;
}

function parseEndpointList(list) {
  if (!list) return [];
  return list
    .split(/[+;]/)
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parseEndpoint);
}

async function main() {
  const f = parseFlags(process.argv.slice(2), {
    known: ['rpc', 'key', 'deployment', 'out', 'operator', 'child', 'expiry-days', 'wallet-key', 'name',
      'device-key', 'device-seed', 'did-validity', 'did-mode', 'fund-eth'],
    repeatable: ['operator', 'child', 'name'],
    usage: USAGE,
  });
  if (!f.deployment) throw new UsageError('--deployment is required', USAGE);
  const keyHex = f.key || process.env.DEPLOYER_KEY;
  if (!keyHex) throw new UsageError('--key is required', USAGE);
  const dep = readJson(f.deployment);
  const rpc = f.rpc || 'http://127.0.0.1:8545';
  const out = f.out || 'seed.json';
  const p = provider(rpc);
  const { chainId } = await p.getNetwork();
  if (Number(chainId) !== dep.chainId) throw new Error(`chain id ${chainId} != deployment's ${dep.chainId}`);

  const signers = new Map(); // address -> NonceManager signer (one per key)
  const signerFor = (hex) => {
    const w = new ethers.Wallet(requireKey(hex, 'key'), p);
    if (!signers.has(w.address)) signers.set(w.address, new ethers.NonceManager(w));
    return signers.get(w.address);
  };
  const allocator = signerFor(keyHex);
  const allocatorAddr = await allocator.getAddress();
  const at = (name, runner) => new ethers.Contract(dep.contracts[name].address, loadArtifact(name).abi, runner);
  const lic = at('SegmentLicense', allocator);
  const ens = at('ENSRegistry', allocator);
  const resolver = at('PublicResolver', allocator);
  const did = at('EthereumDIDRegistry', allocator);
  const gas = {};
  const firstBlock = (await p.getBlockNumber()) + 1;
  const note = (what, rcpt) => {
    (gas[what] ||= []).push(Number(rcpt.gasUsed));
    return rcpt;
  };
  const send = async (what, promise) => {
    try {
      return note(what, await mined(promise, what));
    } catch (e) {
      throw new Error(`${what}: ${explain(e, lic)}`);
    }
  };

  // ---- who is who
  const operators = (f.operator.length ? f.operator : DEFAULT_OPERATORS).map((spec) => {
    const o = parseSpec(spec, ['name', 'key', 'root', 'endpoints', 'router-key'], '--operator');
    for (const k of ['name', 'key', 'root']) if (!o[k]) throw new Error(`--operator ${spec}: ${k}= is required`);
    const signer = signerFor(o.key);
    const routerSeed = o['router-key'] ? null : demoSeed(`router ${o.name}`);
    return {
      name: o.name,
      signer,
      address: new ethers.Wallet(requireKey(o.key, 'operator key')).address,
      root: parsePrefix(o.root),
      endpoints: parseEndpointList(o.endpoints),
      routerKey: o['router-key'] ? hex32(o['router-key'], 'router-key') : ed25519Public(routerSeed),
      routerSeed,
    };
  });
  const byName = new Map(operators.map((o) => [o.name, o]));
  if (byName.size !== operators.length) throw new Error('--operator names must be unique');
  const walletSigner = new ethers.Wallet(requireKey(f['wallet-key'] || demoKey(3), '--wallet-key'), p);
  const wallet = walletSigner.address;
  const deviceSeed = f['device-key'] ? null : f['device-seed'] ? hex32(f['device-seed'], '--device-seed') : demoSeed('device alice');
  const deviceKey = f['device-key'] ? hex32(f['device-key'], '--device-key') : ed25519Public(deviceSeed);
  const didValidity = BigInt(f['did-validity'] || 365 * 24 * 3600);
  const didMode = f['did-mode'] || 'signed';
  if (!['signed', 'direct'].includes(didMode)) throw new UsageError(`--did-mode: signed or direct`, USAGE);

  // ---- gas money for everyone who sends transactions
  const fund = ethers.parseEther(f['fund-eth'] ?? '1');
  if (fund > 0n) {
    const needy = [...operators.map((o) => o.address), ...(didMode === 'direct' ? [wallet] : [])];
    for (const a of new Set(needy)) {
      if (a === allocatorAddr) continue;
      const bal = await p.getBalance(a);
      if (bal < fund) await send('fund', allocator.sendTransaction({ to: a, value: fund - bal }));
    }
  }

  const now = BigInt((await p.getBlock('latest')).timestamp);
  const expiry = now + BigInt(Number(f['expiry-days'] || 365) * 24 * 3600);
  const issuedId = (rcpt) => {
    for (const log of rcpt.logs) {
      try {
        const ev = lic.interface.parseLog(log);
        if (ev && ev.name === 'SegmentIssued') return ev.args.id;
      } catch (_) { /* other contract */ }
    }
    throw new Error('no SegmentIssued event');
  };
  const segments = [];
  const record = (id, seg, holder, parentId, endpoints, routerKey) => {
    const entry = {
      id: Number(id),
      prefix: seg.text,
      prefixHex: seg.prefix,
      prefixLen: seg.prefixLen,
      parentId: Number(parentId),
      holder: holder.address,
      holderName: holder.name || null,
      expiry: Number(expiry),
      routerKey: routerKey || null,
      endpoints: endpoints.map((e) => ({ family: e.family, addr: e.addr, port: e.port, text: e.text })),
      endpointsEncoded: endpoints.length ? encodeEndpoints(endpoints) : '0x',
    };
    segments.push(entry);
    return entry;
  };

  // ---- roots, one per operator, and their routers
  for (const o of operators) {
    const rcpt = await send('issueRoot', lic.issueRoot(o.root.prefix, o.root.prefixLen, o.address, expiry));
    const id = issuedId(rcpt);
    if (o.endpoints.length) {
      await send('setRouter', lic.connect(o.signer).setRouter(id, o.routerKey, encodeEndpoints(o.endpoints)));
    }
    o.rootId = id;
    record(id, o.root, o, 0n, o.endpoints, o.endpoints.length ? o.routerKey : null);
    console.log(`seed: root ${o.root.text} -> ${o.name} ${o.address} (id ${id})`);
  }

  // ---- children
  for (const spec of f.child.length ? f.child : DEFAULT_CHILDREN) {
    const c = parseSpec(spec, ['parent', 'prefix', 'to', 'endpoints'], '--child');
    for (const k of ['parent', 'prefix', 'to']) if (!c[k]) throw new Error(`--child ${spec}: ${k}= is required`);
    let parent;
    if (byName.has(c.parent)) parent = segments.find((s) => s.id === Number(byName.get(c.parent).rootId));
    else {
      const pp = parsePrefix(c.parent);
      parent = segments.find((s) => s.prefixHex === pp.prefix && s.prefixLen === pp.prefixLen);
    }
    if (!parent) throw new Error(`--child ${spec}: parent ${c.parent} is not a segment seeded here`);
    const holderOp = operators.find((o) => o.address === parent.holder);
    if (!holderOp) throw new Error(`--child ${spec}: the parent's holder is not an operator with a key`);
    const seg = parsePrefix(c.prefix);
    const toOp = byName.get(c.to);
    const to = toOp ? toOp.address : ethers.getAddress(c.to);
    const rcpt = await send(
      'subdivide',
      lic.connect(holderOp.signer).subdivide(parent.id, seg.prefix, seg.prefixLen, to, expiry),
    );
    const id = issuedId(rcpt);
    const eps = parseEndpointList(c.endpoints);
    if (eps.length && !toOp) throw new Error(`--child ${spec}: endpoints need 'to' to be an operator`);
    if (eps.length) {
      await send('setRouter', lic.connect(toOp.signer).setRouter(id, toOp.routerKey, encodeEndpoints(eps)));
    }
    record(id, seg, toOp || { address: to }, parent.id, eps, eps.length ? toOp.routerKey : null);
    console.log(`seed: child ${seg.text} of #${parent.id} -> ${toOp ? toOp.name : to} (id ${id})`);
  }

  // ---- ENS names: the allocator key owns the root node (it deployed the registry)
  const resolverAddr = dep.contracts.PublicResolver.address;
  const names = [];
  for (const spec of f.name.length ? f.name : ['alice.eth']) {
    const [name, addrText] = spec.split('=');
    const target = addrText ? ethers.getAddress(addrText) : wallet;
    const labels = name.toLowerCase().split('.');
    if (labels.length < 2) throw new Error(`--name ${name}: need at least two labels (label.tld)`);
    // Make every ancestor (tld first) exist and belong to the allocator.
    for (let i = labels.length - 1; i >= 1; i--) {
      const parentName = labels.slice(i + 1).join('.');
      const nodeName = labels.slice(i).join('.');
      const owner = await ens.owner(namehash(nodeName));
      if (owner === allocatorAddr) continue;
      if (owner !== ethers.ZeroAddress) throw new Error(`ENS ${nodeName} belongs to ${owner}, not to --key`);
      await send('ens.setSubnodeOwner', ens.setSubnodeOwner(namehash(parentName), labelhash(labels[i]), allocatorAddr));
    }
    const parentNode = namehash(labels.slice(1).join('.'));
    const node = namehash(name.toLowerCase());
    await send('ens.setSubnodeRecord', ens.setSubnodeRecord(parentNode, labelhash(labels[0]), allocatorAddr, resolverAddr, 0));
    await send('resolver.setAddr', resolver['setAddr(bytes32,address)'](node, target));
    await send('ens.setOwner', ens.setOwner(node, target)); // hand the name to its wallet
    names.push({ name: name.toLowerCase(), node, address: target, resolver: resolverAddr, owner: target });
    console.log(`seed: ENS ${name} -> ${target}`);
  }

  // ---- the device key, authorised by the wallet in the ERC-1056 registry
  const didAddr = dep.contracts.EthereumDIDRegistry.address;
  let didRcpt;
  if (didMode === 'signed') {
    const owner = await did.identityOwner(wallet);
    if (owner !== wallet) throw new Error(`DID ${wallet} is owned by ${owner}; use the owner's key`);
    const nonce = await did.nonce(owner);
    const digest = ethers.keccak256(
      ethers.solidityPacked(
        ['bytes1', 'bytes1', 'address', 'uint256', 'address', 'string', 'bytes32', 'bytes', 'uint256'],
        ['0x19', '0x00', didAddr, nonce, wallet, 'setAttribute', DID_ED25519_NAME, deviceKey, didValidity],
      ),
    );
    const sig = walletSigner.signingKey.sign(digest);
    didRcpt = await send(
      'did.setAttributeSigned',
      did.setAttributeSigned(wallet, sig.v, sig.r, sig.s, DID_ED25519_NAME, deviceKey, didValidity),
    );
  } else {
    didRcpt = await send(
      'did.setAttribute',
      did.connect(signerFor(walletSigner.privateKey)).setAttribute(wallet, DID_ED25519_NAME, deviceKey, didValidity),
    );
  }
  let validTo = null;
  for (const log of didRcpt.logs) {
    try {
      const ev = did.interface.parseLog(log);
      if (ev && ev.name === 'DIDAttributeChanged') validTo = Number(ev.args.validTo);
    } catch (_) { /* not ours */ }
  }
  console.log(`seed: DID ${wallet} ${DID_ED25519_ATTRIBUTE} = ${deviceKey} (${didMode})`);

  const result = {
    chainId: Number(chainId),
    rpc,
    deployment: f.deployment,
    blocks: { from: firstBlock, to: await p.getBlockNumber() },
    allocator: allocatorAddr,
    note: 'demo keys and seeds below are derived from public strings: never use them for anything real',
    operators: operators.map((o) => ({
      name: o.name,
      address: o.address,
      rootId: Number(o.rootId),
      routerKey: o.routerKey,
      routerSeed: o.routerSeed,
    })),
    segments,
    wallets: [{ name: names[0]?.name ?? null, address: wallet, ensNames: names.filter((n) => n.address === wallet).map((n) => n.name) }],
    names,
    dids: [{
      identity: wallet,
      attribute: DID_ED25519_ATTRIBUTE,
      nameHex: DID_ED25519_NAME,
      value: deviceKey,
      validity: Number(didValidity),
      validTo,
      mode: didMode,
      block: didRcpt.blockNumber,
      tx: didRcpt.hash,
    }],
    devices: [{ wallet, publicKey: deviceKey, seed: deviceSeed }],
    gas,
  };
  writeJson(out, result);
  console.log(`seed: wrote ${out}`);
  p.destroy();
}

/// Names a SegmentLicense custom error when a call reverted with one.
function explain(e, lic) {
  const data = e?.data || e?.info?.error?.data || e?.error?.data;
  if (typeof data === 'string' && data.length >= 10) {
    try {
      const d = lic.interface.parseError(data);
      if (d) return `reverted with ${d.name}(${d.args.map(String).join(', ')})`;
    } catch (_) { /* not ours */ }
  }
  return e?.shortMessage || e?.message || String(e);
}

main().catch((e) => {
  console.error(`seed: ${e.message || e}`);
  process.exit(e instanceof UsageError ? 2 : 1);
});
