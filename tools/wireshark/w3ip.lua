-- W3IP v1 dissector for Wireshark / tshark (Lua, Wireshark 3.x and 4.x).
--
-- Decodes W3IP natively over Ethernet (EtherType 0x88B5) and in UDP port 5733
-- (the IPv4/IPv6 tunnel): the 72-byte fixed header, addresses in canonical W3IP
-- text (16 groups, RFC 5952 rules), their locator / interface id (wallet) / area
-- code, the AUTH (253) and BIND (254) extension headers field by field, and the
-- chainroute-pktgen stamp when a payload ends with one. The wire format is
-- docs/w3ip.md.
--
-- Use:  wireshark -X lua_script:tools/wireshark/w3ip.lua capture.pcap
--       tshark -X lua_script:tools/wireshark/w3ip.lua -r capture.pcap -V -Y w3ip
-- or copy it to ~/.local/lib/wireshark/plugins/.

local w3ip = Proto("w3ip", "W3IP (wallet-addressed network layer)")

local NH_AUTH, NH_BIND = 253, 254
local AUTH_LEN, BIND_LEN = 104, 168
local nh_names = { [NH_AUTH] = "AUTH", [NH_BIND] = "BIND", [59] = "No Next Header", [6] = "TCP", [17] = "UDP", [58] = "ICMPv6" }
-- IPv6 extension numbers (and 255) W3IP does not define: their length is unknown.
local undefined_ext = { [0] = true, [43] = true, [44] = true, [50] = true, [51] = true, [60] = true, [135] = true, [139] = true, [140] = true, [255] = true }

local f = {
  version = ProtoField.uint8("w3ip.version", "Version", base.DEC),
  tclass = ProtoField.uint8("w3ip.tclass", "Traffic Class", base.HEX),
  flow = ProtoField.uint32("w3ip.flow", "Flow Label", base.HEX),
  plen = ProtoField.uint16("w3ip.plen", "Payload Length", base.DEC),
  nxt = ProtoField.uint8("w3ip.nxt", "Next Header", base.DEC, nh_names),
  hlim = ProtoField.uint8("w3ip.hlim", "Hop Limit", base.DEC),
  src = ProtoField.string("w3ip.src", "Source Address"),
  dst = ProtoField.string("w3ip.dst", "Destination Address"),
  addr = ProtoField.string("w3ip.addr", "Address"),
  src_raw = ProtoField.bytes("w3ip.src.raw", "Source (256 bits)"),
  dst_raw = ProtoField.bytes("w3ip.dst.raw", "Destination (256 bits)"),
  src_area = ProtoField.uint16("w3ip.src.area", "Source Area Code", base.HEX),
  dst_area = ProtoField.uint16("w3ip.dst.area", "Destination Area Code", base.HEX),
  src_locator = ProtoField.bytes("w3ip.src.locator", "Source Locator (96 bits)"),
  dst_locator = ProtoField.bytes("w3ip.dst.locator", "Destination Locator (96 bits)"),
  src_wallet = ProtoField.string("w3ip.src.wallet", "Source Interface Id (wallet)"),
  dst_wallet = ProtoField.string("w3ip.dst.wallet", "Destination Interface Id (wallet)"),
  dst_anycast = ProtoField.bool("w3ip.dst.anycast", "Destination is anycast"),
  ext_nxt = ProtoField.uint8("w3ip.ext.nxt", "Next Header", base.DEC, nh_names),
  ext_len = ProtoField.uint8("w3ip.ext.len", "Hdr Ext Len", base.DEC),
  auth = ProtoField.none("w3ip.auth", "AUTH header"),
  auth_reserved = ProtoField.bytes("w3ip.auth.reserved", "Reserved"),
  auth_key = ProtoField.bytes("w3ip.auth.key", "Signer Key (Ed25519)"),
  auth_sig = ProtoField.bytes("w3ip.auth.sig", "Signature (Ed25519)"),
  bind = ProtoField.none("w3ip.bind", "BIND header"),
  bind_reserved = ProtoField.bytes("w3ip.bind.reserved", "Reserved"),
  bind_wallet = ProtoField.string("w3ip.bind.wallet", "Wallet"),
  bind_unicast = ProtoField.string("w3ip.bind.unicast", "Unicast"),
  bind_expiry = ProtoField.uint64("w3ip.bind.expiry", "Expiry (Unix seconds)", base.DEC),
  bind_expiry_time = ProtoField.absolute_time("w3ip.bind.expiry_time", "Expiry", base.UTC),
  bind_seq = ProtoField.uint64("w3ip.bind.seq", "Sequence", base.DEC),
  bind_key = ProtoField.bytes("w3ip.bind.key", "Device Key (Ed25519)"),
  bind_sig = ProtoField.bytes("w3ip.bind.sig", "Signature (Ed25519)"),
  payload = ProtoField.bytes("w3ip.payload", "Payload"),
  stamp = ProtoField.none("w3ip.stamp", "chainroute-pktgen stamp"),
  stamp_class = ProtoField.uint8("w3ip.stamp.class", "Class", base.DEC,
    { [0] = "native", [1] = "tunnel", [2] = "signed", [3] = "bind", [4] = "invalid", [5] = "spoofed", [6] = "badsig" }),
  stamp_flags = ProtoField.uint8("w3ip.stamp.flags", "Flags", base.HEX),
  stamp_template = ProtoField.uint16("w3ip.stamp.template", "Template", base.DEC),
  stamp_seq = ProtoField.uint64("w3ip.stamp.seq", "Sequence", base.DEC),
  stamp_tsc = ProtoField.uint64("w3ip.stamp.tsc", "TX TSC", base.DEC),
}
w3ip.fields = {}
for _, v in pairs(f) do table.insert(w3ip.fields, v) end

local e_version = ProtoExpert.new("w3ip.bad_version", "W3IP version is not 1", expert.group.MALFORMED, expert.severity.ERROR)
local e_trunc = ProtoExpert.new("w3ip.truncated", "Truncated W3IP packet", expert.group.MALFORMED, expert.severity.ERROR)
local e_ext = ProtoExpert.new("w3ip.bad_extension", "Extension header W3IP does not define, duplicated or of the wrong length", expert.group.MALFORMED, expert.severity.ERROR)
local e_reserved = ProtoExpert.new("w3ip.reserved", "Reserved field not zero", expert.group.MALFORMED, expert.severity.WARN)
local e_hlim = ProtoExpert.new("w3ip.hop_limit", "Hop limit 0 or 1: a router drops it", expert.group.SEQUENCE, expert.severity.NOTE)
w3ip.experts = { e_version, e_trunc, e_ext, e_reserved, e_hlim }

local data_dissector = Dissector.get("data")

-- Canonical text of a 32-byte TvbRange: 16 groups of lowercase hex without leading
-- zeros; the longest run of two or more zero groups (the first on ties) is "::".
local function w3ip_text(r)
  local g = {}
  for i = 0, 15 do g[i + 1] = r(i * 2, 2):uint() end
  local best_s, best_n, cur_s, cur_n = 0, 0, 0, 0
  for i = 1, 16 do
    if g[i] == 0 then
      if cur_n == 0 then cur_s = i end
      cur_n = cur_n + 1
      if cur_n > best_n then best_s, best_n = cur_s, cur_n end
    else
      cur_n = 0
    end
  end
  if best_n < 2 then best_n = 0 end
  local function join(a, b)
    local t = {}
    for i = a, b do t[#t + 1] = string.format("%x", g[i]) end
    return table.concat(t, ":")
  end
  if best_n == 0 then return join(1, 16) end
  return join(1, best_s - 1) .. "::" .. join(best_s + best_n, 16)
end

local function wallet_text(r)
  return "0x" .. string.lower(r:bytes():tohex())
end

local function add_address(tree, r, which)
  local text = w3ip_text(r)
  local item = tree:add(which == "src" and f.src or f.dst, r, text)
  tree:add(f.addr, r, text):set_hidden()
  item:add(which == "src" and f.src_raw or f.dst_raw, r)
  item:add(which == "src" and f.src_area or f.dst_area, r(0, 2))
  item:add(which == "src" and f.src_locator or f.dst_locator, r(0, 12))
  item:add(which == "src" and f.src_wallet or f.dst_wallet, r(12, 20), wallet_text(r(12, 20)))
  if which == "dst" then
    local anycast = r(0, 12):bytes():tohex() == string.rep("0", 24)
    item:add(f.dst_anycast, r(0, 12), anycast)
    if anycast then item:append_text(" (anycast " .. wallet_text(r(12, 20)) .. ")") end
  end
  return text
end

local function dissect_auth(buf, tree, off)
  local r = buf(off, AUTH_LEN)
  local t = tree:add(f.auth, r)
  t:add(f.ext_nxt, buf(off, 1))
  t:add(f.ext_len, buf(off + 1, 1))
  local res = t:add(f.auth_reserved, buf(off + 2, 6))
  if buf(off + 2, 6):bytes():tohex() ~= "000000000000" then res:add_proto_expert_info(e_reserved) end
  t:add(f.auth_key, buf(off + 8, 32))
  t:add(f.auth_sig, buf(off + 40, 64))
  t:append_text(", signer 0x" .. string.lower(buf(off + 8, 32):bytes():tohex()))
end

local function dissect_bind(buf, tree, off)
  local r = buf(off, BIND_LEN)
  local t = tree:add(f.bind, r)
  t:add(f.ext_nxt, buf(off, 1))
  t:add(f.ext_len, buf(off + 1, 1))
  local res = t:add(f.bind_reserved, buf(off + 2, 2))
  if buf(off + 2, 2):uint() ~= 0 then res:add_proto_expert_info(e_reserved) end
  local wallet = wallet_text(buf(off + 4, 20))
  t:add(f.bind_wallet, buf(off + 4, 20), wallet)
  local unicast = w3ip_text(buf(off + 24, 32))
  t:add(f.bind_unicast, buf(off + 24, 32), unicast)
  t:add(f.bind_expiry, buf(off + 56, 8))
  local secs = buf(off + 56, 8):uint64():tonumber()
  t:add(f.bind_expiry_time, buf(off + 56, 8), NSTime.new(secs, 0))
  t:add(f.bind_seq, buf(off + 64, 8))
  t:add(f.bind_key, buf(off + 72, 32))
  t:add(f.bind_sig, buf(off + 104, 64))
  t:append_text(": " .. wallet .. " at " .. unicast)
  return wallet, unicast
end

function w3ip.dissector(buf, pinfo, tree)
  local len = buf:len()
  if len < 72 then
    local t = tree:add(w3ip, buf(), "W3IP (truncated)")
    t:add_proto_expert_info(e_trunc)
    return
  end
  pinfo.cols.protocol = "W3IP"
  local plen = buf(4, 2):uint()
  local total = 72 + plen
  local t = tree:add(w3ip, buf(0, math.min(total, len)))
  local version = buf(0, 1):bitfield(0, 4)
  local vi = t:add(f.version, buf(0, 1), version)
  if version ~= 1 then vi:add_proto_expert_info(e_version) end
  t:add(f.tclass, buf(0, 2), buf(0, 2):bitfield(4, 8))
  t:add(f.flow, buf(1, 3), buf(1, 3):bitfield(4, 20))
  local pi = t:add(f.plen, buf(4, 2))
  t:add(f.nxt, buf(6, 1))
  local hl = t:add(f.hlim, buf(7, 1))
  if buf(7, 1):uint() <= 1 then hl:add_proto_expert_info(e_hlim) end
  local src = add_address(t, buf(8, 32), "src")
  local dst = add_address(t, buf(40, 32), "dst")
  pinfo.cols.src = src
  pinfo.cols.dst = dst
  t:append_text(", Src: " .. src .. ", Dst: " .. dst)
  local info = "W3IP " .. src .. " -> " .. dst
  if total > len then
    pi:add_proto_expert_info(e_trunc)
    pinfo.cols.info = info .. " [truncated]"
    return
  end
  -- The extension chain: AUTH and BIND at most once each, fixed lengths.
  local off, nh, seen = 72, buf(6, 1):uint(), {}
  while nh == NH_AUTH or nh == NH_BIND do
    local want = (nh == NH_AUTH) and AUTH_LEN or BIND_LEN
    if off + 2 > total or seen[nh] or (buf(off + 1, 1):uint() + 1) * 8 ~= want or off + want > total then
      t:add_proto_expert_info(e_ext)
      pinfo.cols.info = info .. " [bad extension]"
      return
    end
    seen[nh] = true
    local next_nh = buf(off, 1):uint()
    if nh == NH_AUTH then
      dissect_auth(buf, t, off)
      info = info .. " AUTH"
    else
      local wallet, unicast = dissect_bind(buf, t, off)
      info = info .. " BIND " .. wallet .. " at " .. unicast .. " seq " .. buf(off + 64, 8):uint64():tonumber()
    end
    off = off + want
    nh = next_nh
  end
  if undefined_ext[nh] then
    t:add_proto_expert_info(e_ext)
    info = info .. " [undefined extension " .. nh .. "]"
  end
  if total > off then
    local p = buf(off, total - off)
    t:add(f.payload, p)
    -- chainroute-pktgen's stamp: the last 24 bytes, starting with "CRPG".
    if total - off >= 24 and buf(total - 24, 4):string() == "CRPG" then
      local s = t:add(f.stamp, buf(total - 24, 24))
      s:add(f.stamp_class, buf(total - 20, 1))
      s:add(f.stamp_flags, buf(total - 19, 1))
      s:add(f.stamp_template, buf(total - 18, 2))
      s:add(f.stamp_seq, buf(total - 16, 8))
      s:add(f.stamp_tsc, buf(total - 8, 8))
    end
  end
  pinfo.cols.info = info
  return total
end

DissectorTable.get("ethertype"):add(0x88B5, w3ip)
DissectorTable.get("udp.port"):add(5733, w3ip)
