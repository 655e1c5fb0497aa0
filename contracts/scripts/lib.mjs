// Shared helpers for build/deploy/seed and the live test: flags, the 256-bit address text
// form, endpoint encoding, ENS namehash, demo keys, artifacts.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ethers } from 'ethers';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const OUT = path.join(ROOT, 'out');
export const CONTRACTS = ['ENSRegistry', 'PublicResolver', 'EthereumDIDRegistry', 'SegmentLicense'];

/// anvil's public development mnemonic: the demo defaults derive their keys from it.
export const DEMO_MNEMONIC = 'test test test test test test test test test test test junk';
export function demoKey(index) {
  return ethers.HDNodeWallet.fromPhrase(DEMO_MNEMONIC, undefined, `m/44'/60'/0'/0/${index}`).privateKey;
}

// ------------------------------------------------------------------ flags

/// Parses `--name value`, `--name=value` and bare `--flag` (true). Repeated flags collect into
/// arrays when `repeatable` names them. Unknown flags are an error.
export function parseFlags(argv, { known, repeatable = [], booleans = [], usage }) {
  const out = {};
  for (const r of repeatable) out[r] = [];
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (a === '-h' || a === '--help') {
      console.log(usage);
      process.exit(0);
    }
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument: ${a}`, usage);
    a = a.slice(2);
    let value;
    const eq = a.indexOf('=');
    if (eq >= 0) {
      value = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (!known.includes(a)) throw new UsageError(`unknown flag: --${a}`, usage);
    if (value === undefined) {
      if (booleans.includes(a)) value = true;
      else if (i + 1 < argv.length) value = argv[++i];
      else throw new UsageError(`--${a} needs a value`, usage);
    }
    if (repeatable.includes(a)) out[a].push(value);
    else out[a] = value;
  }
  return out;
}

export class UsageError extends Error {
  constructor(msg, usage) {
    super(`${msg}\n\n${usage}`);
    this.name = 'UsageError';
  }
}

export function requireKey(hex, what) {
  const h = hex.startsWith('0x') ? hex : '0x' + hex;
  if (!/^0x[0-9a-fA-F]{64}$/.test(h)) throw new Error(`${what}: expected 32 bytes of hex`);
  return h;
}

export function hex32(hex, what) {
  const h = hex.startsWith('0x') ? hex : '0x' + hex;
  if (!/^0x[0-9a-fA-F]{64}$/.test(h)) throw new Error(`${what}: expected 32 bytes of hex, got ${hex}`);
  return h.toLowerCase();
}

// ------------------------------------------------------------------ 256-bit addresses

/// Parses the text form of a 256-bit address: 16 groups of up to 4 hex digits separated by ':',
/// with one '::' for a run of zero groups (IPv6 style); or 0x followed by 64 hex digits.
export function parseAddress256(text) {
  const t = text.trim().toLowerCase();
  if (/^0x[0-9a-f]{64}$/.test(t)) return BigInt(t);
  const halves = t.split('::');
  if (halves.length > 2) throw new Error(`bad address ${text}: more than one '::'`);
  const groups = (s) => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 16 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) throw new Error(`bad address ${text}: need 16 groups`);
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  let v = 0n;
  for (const g of all) {
    if (!/^[0-9a-f]{1,4}$/.test(g)) throw new Error(`bad address ${text}: group '${g}'`);
    v = (v << 16n) | BigInt('0x' + g);
  }
  return v;
}

/// Formats a 256-bit value as 16 groups with the longest run (>= 2) of zero groups as '::'.
export function formatAddress256(v) {
  const g = [];
  for (let i = 15; i >= 0; i--) g.push(Number((v >> BigInt(16 * i)) & 0xffffn).toString(16));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 16; ) {
    if (g[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 16 && g[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return g.join(':');
  return g.slice(0, best).join(':') + '::' + g.slice(best + bestLen).join(':');
}

/// "2001:db8::/32" -> { prefix: bytes32 hex, prefixLen, text }. Host bits must be zero.
export function parsePrefix(text) {
  const m = /^(.+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) throw new Error(`bad prefix ${text}: expected ADDRESS/LEN`);
  const len = Number(m[2]);
  if (len > 256) throw new Error(`bad prefix ${text}: length over 256`);
  const v = parseAddress256(m[1]);
  const host = len === 256 ? 0n : (1n << BigInt(256 - len)) - 1n;
  if ((v & host) !== 0n) throw new Error(`bad prefix ${text}: host bits set beyond /${len}`);
  return { prefix: ethers.toBeHex(v, 32), prefixLen: len, text: `${formatAddress256(v)}/${len}` };
}

export function formatPrefix(prefixHex, len) {
  return `${formatAddress256(BigInt(prefixHex))}/${len}`;
}

// ------------------------------------------------------------------ router endpoints

export const ENDPOINT_TUPLE = 'tuple(uint8 family, bytes16 addr, uint16 port)[]';

/// "127.0.0.1:5733", "[::1]:5733" -> { family, addr (bytes16 hex), port, text }.
export function parseEndpoint(text) {
  const t = text.trim();
  let host;
  let port;
  let m;
  if ((m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(t))) [host, port] = [m[1], m[2]];
  else if ((m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(t))) [host, port] = [m[1], m[2]];
  else throw new Error(`bad endpoint ${text}: expected IPv4:PORT or [IPv6]:PORT`);
  port = Number(port);
  if (!(port > 0 && port < 65536)) throw new Error(`bad endpoint ${text}: port`);
  if (host.includes(':')) {
    return { family: 6, addr: ethers.hexlify(ipv6Bytes(host)), port, text: `[${host}]:${port}` };
  }
  const parts = host.split('.').map(Number);
  if (parts.some((p) => !(p >= 0 && p <= 255))) throw new Error(`bad endpoint ${text}: IPv4 address`);
  const b = new Uint8Array(16);
  b.set(parts, 0); // IPv4 in the first 4 bytes, the rest zero
  return { family: 4, addr: ethers.hexlify(b), port, text: `${host}:${port}` };
}

function ipv6Bytes(text) {
  const halves = text.split('::');
  if (halves.length > 2) throw new Error(`bad IPv6 address ${text}`);
  const groups = (s) => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) throw new Error(`bad IPv6 address ${text}`);
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  const b = new Uint8Array(16);
  all.forEach((g, i) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`bad IPv6 address ${text}`);
    const n = parseInt(g, 16);
    b[2 * i] = n >> 8;
    b[2 * i + 1] = n & 0xff;
  });
  return b;
}

export function encodeEndpoints(eps) {
  return ethers.AbiCoder.defaultAbiCoder().encode(
    [ENDPOINT_TUPLE],
    [eps.map((e) => [e.family, e.addr, e.port])],
  );
}

export function decodeEndpoints(data) {
  if (!data || data === '0x') return [];
  const [list] = ethers.AbiCoder.defaultAbiCoder().decode([ENDPOINT_TUPLE], data);
  return list.map(([family, addr, port]) => {
    const b = ethers.getBytes(addr);
    const host =
      Number(family) === 4
        ? Array.from(b.slice(0, 4)).join('.')
        : formatIpv6(b);
    const text = Number(family) === 4 ? `${host}:${port}` : `[${host}]:${port}`;
    return { family: Number(family), addr, port: Number(port), host, text };
  });
}

function formatIpv6(b) {
  const g = [];
  for (let i = 0; i < 8; i++) g.push(((b[2 * i] << 8) | b[2 * i + 1]).toString(16));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return g.join(':');
  return g.slice(0, best).join(':') + '::' + g.slice(best + bestLen).join(':');
}

// ------------------------------------------------------------------ ENS and DID

/// EIP-137 namehash.
export function namehash(name) {
  let node = ethers.ZeroHash;
  if (name === '') return node;
  const labels = name.split('.');
  for (let i = labels.length - 1; i >= 0; i--) {
    node = ethers.keccak256(ethers.concat([node, labelhash(labels[i])]));
  }
  return node;
}

export function labelhash(label) {
  if (label === '' || label !== label.toLowerCase()) throw new Error(`bad ENS label '${label}' (lower case, not empty)`);
  return ethers.keccak256(ethers.toUtf8Bytes(label));
}

export const DID_ED25519_ATTRIBUTE = 'did/pub/Ed25519/veriKey/base64';
export const DID_ED25519_NAME = ethers.encodeBytes32String(DID_ED25519_ATTRIBUTE);

/// Ed25519 public key (32 bytes hex) of a 32-byte seed.
export function ed25519Public(seedHex) {
  const seed = ethers.getBytes(seedHex);
  if (seed.length !== 32) throw new Error('Ed25519 seed must be 32 bytes');
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seed)]);
  const key = crypto.createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  const spki = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' });
  return ethers.hexlify(spki.subarray(spki.length - 32));
}

/// A fixed demo seed for a label (never use for anything real).
export function demoSeed(label) {
  return ethers.sha256(ethers.toUtf8Bytes(`chainroute demo key: ${label}`));
}

// ------------------------------------------------------------------ artifacts and JSON

export function artifactPath(name) {
  return path.join(OUT, `${name}.json`);
}

export function loadArtifact(name) {
  const file = artifactPath(name);
  if (!fs.existsSync(file)) throw new Error(`missing artifact ${file}: run contracts/build (or setup.sh)`);
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

export function writeJson(file, value) {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
}

export function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/// A provider that does not poll aggressively (automine chains answer at once).
export function provider(rpc) {
  // No request cache: reads right after a transaction must see it (nonces, owners).
  const p = new ethers.JsonRpcProvider(rpc, undefined, { batchMaxCount: 1, cacheTimeout: -1 });
  p.pollingInterval = 100;
  return p;
}

/// Waits for a transaction and fails loudly when it reverted.
export async function mined(txPromise, what) {
  const tx = await txPromise;
  const rcpt = await tx.wait();
  if (!rcpt || rcpt.status !== 1) throw new Error(`${what}: transaction failed`);
  return rcpt;
}

// ------------------------------------------------------------------ foundry binaries

/// Path of a foundry tool's platform binary from its npm package (never the .bin wrapper:
/// it exits 0 even when the tool fails).
export function foundryBin(tool) {
  const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch] || process.arch;
  const file = path.join(ROOT, 'node_modules', '@foundry-rs', `${tool}-${process.platform}-${arch}`, 'bin', tool);
  if (!fs.existsSync(file)) throw new Error(`missing ${file}: run contracts/setup.sh`);
  return file;
}
