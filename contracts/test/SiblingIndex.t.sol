// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TestBase} from "./utils/TestBase.sol";
import {SegmentLicense} from "../src/SegmentLicense.sol";

/// The sibling index against a naive model, its depth bound, and worst-case gas.
contract SiblingIndexTest is TestBase {
    SegmentLicense internal lic;
    uint64 internal constant T0 = 1_700_000_000;
    uint64 internal constant EXP = T0 + 1000;

    struct Live {
        uint256 id;
        bytes32 prefix;
        uint16 len;
    }

    Live[] internal live;

    function setUp() public {
        vm.warp(T0);
        lic = new SegmentLicense(address(this));
    }

    function overlaps(bytes32 a, uint16 la, bytes32 b, uint16 lb) internal pure returns (bool) {
        uint16 m = la < lb ? la : lb;
        if (m == 0) return true;
        uint256 mask = ~(type(uint256).max >> m);
        return (uint256(a) ^ uint256(b)) & mask == 0;
    }

    function maskTo(uint256 v, uint16 len) internal pure returns (bytes32) {
        return len >= 256 ? bytes32(v) : bytes32(v & ~(type(uint256).max >> len));
    }

    /// Try one child; the contract must agree with the naive model, overlap for overlap.
    function tryChild(uint256 parent, bytes32 prefix, uint16 len) internal {
        bool expectOverlap;
        for (uint256 i = 0; i < live.length; i++) {
            if (overlaps(prefix, len, live[i].prefix, live[i].len)) expectOverlap = true;
        }
        try lic.subdivide(parent, prefix, len, address(this), EXP) returns (uint256 id) {
            assertTrue(!expectOverlap, "accepted an overlapping child");
            live.push(Live(id, prefix, len));
        } catch (bytes memory reason) {
            assertTrue(expectOverlap, "rejected a disjoint child");
            assertEq(bytes4(reason), SegmentLicense.OverlapsSibling.selector, "overlap error");
            uint256 other;
            assembly {
                other := mload(add(reason, 36))
            }
            bool found;
            for (uint256 i = 0; i < live.length; i++) {
                if (live[i].id == other && overlaps(prefix, len, live[i].prefix, live[i].len)) found = true;
            }
            assertTrue(found, "error names a live overlapping sibling");
        }
    }

    function revokeAt(uint256 i) internal {
        lic.revoke(live[i].id);
        live[i] = live[live.length - 1];
        live.pop();
    }

    /// Random operations under a /4: random blocks, blocks around/inside/next to live ones,
    /// revocations. At most 20 live siblings, so the depth bound can never be what rejects.
    function testFuzz_matchesNaiveModel(uint256 seed) public {
        uint16 plen = 4;
        uint256 parent = lic.issueRoot(maskTo(0xA << 252, plen), plen, address(this), EXP);
        uint256 base = 0xA << 252;
        for (uint256 step = 0; step < 60; step++) {
            seed = uint256(keccak256(abi.encode(seed, step)));
            uint256 kind = seed % 8;
            uint256 r = seed >> 8;
            if ((kind == 0 || live.length >= 20) && live.length > 0) {
                revokeAt(r % live.length);
                continue;
            }
            uint16 len;
            uint256 bits;
            if (kind <= 3 || live.length == 0) {
                // Fresh block; short lengths often, so that collisions happen.
                len = uint16(plen + 1 + ((r & 1 == 0) ? (r >> 1) % 12 : (r >> 1) % 252));
                bits = uint256(keccak256(abi.encode(r)));
            } else {
                Live memory l = live[r % live.length];
                uint256 d = (r >> 64) % 256;
                bits = uint256(l.prefix);
                if (kind == 4) {
                    len = uint16(plen + 1 + d % (l.len - plen)); // around it (or itself)
                } else if (kind == 5) {
                    len = uint16(l.len + (l.len == 256 ? 0 : d % (257 - l.len))); // inside it
                    bits |= uint256(keccak256(abi.encode(r, 1))) >> l.len;
                } else {
                    len = l.len; // a neighbour: flip one bit
                    bits ^= 1 << (255 - (plen + d % (l.len - plen)));
                    if (kind == 7 && len < 256) len = uint16(len + 1 + d % (256 - len));
                    bits |= uint256(keccak256(abi.encode(r, 2))) >> l.len;
                }
            }
            bits = (bits & (type(uint256).max >> plen)) | base; // stay inside the parent
            tryChild(parent, maskTo(bits, len), len);
        }
        // Every live child still occupies its space; every revoked one freed it.
        for (uint256 i = 0; i < live.length; i++) {
            tryChild(parent, live[i].prefix, live[i].len);
        }
        while (live.length > 0) revokeAt(0);
        tryChild(parent, maskTo(base | (1 << 250), 5), 5);
        tryChild(parent, maskTo(base, 5), 5);
    }

    /// Deterministic churn: fill a parent with 64 blocks, revoke every other, refill, check.
    function test_churnKeepsIndexConsistent() public {
        uint256 parent = lic.issueRoot(bytes32(0), 0, address(this), EXP);
        for (uint256 i = 0; i < 64; i++) tryChild(parent, bytes32(i << 250), 6);
        for (uint256 i = 0; i < live.length; i += 2) revokeAt(i);
        for (uint256 i = 0; i < 64; i++) tryChild(parent, bytes32(i << 250), 6);
        for (uint256 i = 0; i < 64; i++) tryChild(parent, bytes32((i << 250) | (1 << 200)), 56);
        assertEq(live.length, 64, "64 live after refill");
        for (uint256 i = 0; i < 64; i += 3) revokeAt(i % live.length);
        for (uint256 i = 0; i < 64; i++) tryChild(parent, bytes32((i << 250) | (1 << 200)), 56);
    }

    /// A skewed layout: 1, 01, 001, ... each deeper block sits below all the others in the index.
    function skewed(uint256 parent, uint256 n) internal returns (uint256 lastId) {
        for (uint256 k = 1; k <= n; k++) {
            lastId = lic.subdivide(parent, bytes32(uint256(1) << (256 - k)), uint16(k), address(this), EXP);
        }
    }

    /// Transaction gas of the last call: forge's --gas-report mode runs every call as its own
    /// transaction (gasleft() then already counts the intrinsic cost); a plain run does not, so
    /// add 21000 plus the calldata cost there. Storage is cooled first, as in a fresh transaction.
    function txGas(uint256 measured, bytes memory callData) internal returns (uint256) {
        uint256 g = gasleft();
        (bool ok,) = address(lic).call(abi.encodeCall(lic.nextId, ())); // a CALL, as isolated ones are
        assertTrue(ok, "nextId");
        if (g - gasleft() > 21000) return measured; // isolated: intrinsic already counted
        uint256 cost = 21000;
        for (uint256 i = 0; i < callData.length; i++) cost += callData[i] == 0 ? 4 : 16;
        return measured + cost;
    }

    function test_depthBoundAndWorstCaseGas() public {
        uint256 parent = lic.issueRoot(bytes32(0), 0, address(this), EXP);
        uint256 depth = lic.MAX_SIBLING_DEPTH();
        skewed(parent, depth + 1); // walks up to depth - 1 nodes
        // The next one walks exactly MAX_SIBLING_DEPTH nodes: the costliest accepted subdivide,
        // here with a full /256 key, to a first-time holder.
        bytes32 key = bytes32(uint256(1) << (256 - (depth + 2)));
        vm.cool(address(lic));
        uint256 g = gasleft();
        lic.subdivide(parent, key, 256, address(0xB0B), EXP);
        g = txGas(g - gasleft(), abi.encodeCall(lic.subdivide, (parent, key, 256, address(0xB0B), EXP)));
        log("gas: subdivide worst case (sibling walk at the bound, /256, new holder)", g);
        assertTrue(g < 300000, "worst-case subdivide under 300k gas");
        // One more level is refused.
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.SiblingIndexTooDeep.selector, parent));
        lic.subdivide(parent, bytes32(uint256(1) << (256 - (depth + 3))), 256, address(this), EXP);
        // Revoking deep in the index still works and frees space.
        lic.revoke(3); // the block 01/2
        try lic.subdivide(parent, bytes32(0), 1, address(this), EXP) returns (uint256) {
            fail("0/1 still holds 001/3 and more");
        } catch (bytes memory reason) {
            assertEq(bytes4(reason), SegmentLicense.OverlapsSibling.selector, "overlap");
        }
        lic.subdivide(parent, bytes32(uint256(1) << 254), 2, address(this), EXP);
    }

    function test_equalSizeSiblingsStayShallow() public {
        // 256 equal /8 blocks under a /0: a balanced index of depth 8, far from the bound.
        uint256 parent = lic.issueRoot(bytes32(0), 0, address(this), EXP);
        for (uint256 i = 0; i < 256; i++) {
            lic.subdivide(parent, bytes32(((i * 167) % 256) << 248), 8, address(this), EXP);
        }
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.OverlapsSibling.selector, 2));
        lic.subdivide(parent, bytes32(0), 1, address(this), EXP);
    }

    /// Transaction gas of each call in a typical setup, every slot cold (the live anvil test
    /// reports the same from receipts; forge's --gas-report has min/avg/max).
    function test_gasPerCall() public {
        bytes32 a = bytes32(uint256(0x2001) << 240);
        bytes32 b = bytes32(uint256(0x2002) << 240);
        address op = address(0x0b0b);
        uint256 r = measure("issueRoot", abi.encodeCall(lic.issueRoot, (a, 16, address(this), EXP)));
        uint256 r2 = measure("issueRoot (2nd root)", abi.encodeCall(lic.issueRoot, (b, 16, address(this), EXP)));
        bytes32 c1 = bytes32(uint256(0x20010db8) << 224);
        bytes32 c2 = bytes32(uint256(0x20010db9) << 224);
        uint256 c = measure("subdivide (1st child)", abi.encodeCall(lic.subdivide, (r, c1, 32, op, EXP)));
        measure("subdivide (2nd child)", abi.encodeCall(lic.subdivide, (r, c2, 32, op, EXP)));
        SegmentLicense.Endpoint[] memory e = new SegmentLicense.Endpoint[](2);
        e[0] = SegmentLicense.Endpoint(4, bytes16(bytes4(0x7f000001)), 5733);
        e[1] = SegmentLicense.Endpoint(6, bytes16(uint128(1)), 5733);
        measure("setRouter (2 endpoints)", abi.encodeCall(lic.setRouter, (r2, keccak256("k"), abi.encode(e))));
        measure("renew", abi.encodeCall(lic.renew, (c, EXP - 1)));
        measure("revoke", abi.encodeCall(lic.revoke, (c)));
        measure("transferFrom", abi.encodeCall(lic.transferFrom, (address(this), op, r2)));
    }

    function measure(string memory what, bytes memory callData) internal returns (uint256 ret) {
        vm.cool(address(lic));
        uint256 g = gasleft();
        (bool ok, bytes memory out) = address(lic).call(callData);
        g = g - gasleft();
        assertTrue(ok, what);
        log(string.concat("gas: ", what), txGas(g, callData));
        if (out.length == 32) ret = abi.decode(out, (uint256));
    }
}
