// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TestBase, Vm} from "./utils/TestBase.sol";
import {SegmentLicense} from "../src/SegmentLicense.sol";

contract SegmentLicenseTest is TestBase {
    SegmentLicense internal lic;

    address internal constant ALICE = address(0xA11CE);
    address internal constant BOB = address(0xB0B);
    address internal constant CAROL = address(0xCA201);
    address internal constant MALLORY = address(0xBAD);
    uint64 internal constant T0 = 1_700_000_000;
    uint64 internal constant YEAR = 365 days;

    function setUp() public {
        vm.warp(T0);
        lic = new SegmentLicense(address(this));
    }

    // ------------------------------------------------------------ helpers

    /// The prefix whose top `len` bits are `value`.
    function pre(uint256 value, uint16 len) internal pure returns (bytes32) {
        return len == 0 ? bytes32(0) : bytes32(value << (256 - len));
    }

    function ep4(bytes4 a, uint16 port) internal pure returns (SegmentLicense.Endpoint memory) {
        return SegmentLicense.Endpoint(4, bytes16(a), port);
    }

    function oneEndpoint() internal pure returns (bytes memory) {
        SegmentLicense.Endpoint[] memory e = new SegmentLicense.Endpoint[](1);
        e[0] = ep4(0x7f000001, 5733);
        return abi.encode(e);
    }

    function rootFor(address who) internal returns (uint256) {
        return lic.issueRoot(pre(0x2001, 16), 16, who, T0 + YEAR);
    }

    function err(bytes4 sel, uint256 a) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(sel, a);
    }

    function err2(bytes4 sel, uint256 a, address b) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(sel, a, b);
    }

    // ------------------------------------------------------------ roots

    function test_issueRoot_recordsSegment() public {
        uint256 id = rootFor(ALICE);
        assertEq(id, 1, "first id is 1");
        (bytes32 prefix, uint16 len, uint256 parent, uint64 expiry, bool revoked) = lic.segment(id);
        assertEq(prefix, pre(0x2001, 16), "prefix");
        assertEq(len, 16, "len");
        assertEq(parent, 0, "roots have parent 0");
        assertEq(expiry, T0 + YEAR, "expiry");
        assertTrue(!revoked, "not revoked");
        assertEq(lic.ownerOf(id), ALICE, "holder");
        assertTrue(lic.isValid(id), "valid");
        assertEq(lic.totalSupply(), 1, "enumerable supply");
        assertEq(lic.tokenOfOwnerByIndex(ALICE, 0), id, "enumerable by owner");
        assertEq(lic.nextId(), 2, "next id");
    }

    function test_issueRoot_onlyAllocator() public {
        bytes32 role = lic.ALLOCATOR_ROLE();
        vm.prank(MALLORY);
        vm.expectRevert(
            abi.encodeWithSignature("AccessControlUnauthorizedAccount(address,bytes32)", MALLORY, role)
        );
        lic.issueRoot(pre(0x2001, 16), 16, MALLORY, T0 + YEAR);
        lic.grantRole(role, BOB);
        vm.prank(BOB);
        uint256 id = lic.issueRoot(pre(0x2001, 16), 16, CAROL, T0 + YEAR);
        assertEq(lic.ownerOf(id), CAROL, "granted allocator issues");
    }

    function test_roots_neverOverlap() public {
        uint256 a = rootFor(ALICE);
        vm.expectRevert(err(SegmentLicense.OverlapsSibling.selector, a));
        lic.issueRoot(pre(0x2001, 16), 16, BOB, T0 + YEAR); // the same block
        vm.expectRevert(err(SegmentLicense.OverlapsSibling.selector, a));
        lic.issueRoot(pre(0x20, 8), 8, BOB, T0 + YEAR); // a block around it
        vm.expectRevert(err(SegmentLicense.OverlapsSibling.selector, a));
        lic.issueRoot(pre(0x20010db8, 32), 32, BOB, T0 + YEAR); // a block inside it
        vm.expectRevert(err(SegmentLicense.OverlapsSibling.selector, a));
        lic.issueRoot(bytes32(0), 0, BOB, T0 + YEAR); // the whole space
        uint256 b = lic.issueRoot(pre(0x2002, 16), 16, BOB, T0 + YEAR); // the neighbour
        uint256 c = lic.issueRoot(pre(0x2000, 16), 16, BOB, T0 + YEAR);
        assertTrue(lic.isValid(b) && lic.isValid(c), "disjoint roots");
    }

    function test_root_revokeFreesSpace() public {
        uint256 a = rootFor(ALICE);
        lic.revoke(a);
        assertTrue(!lic.isValid(a), "revoked root invalid");
        uint256 b = lic.issueRoot(pre(0x20, 8), 8, BOB, T0 + YEAR);
        assertTrue(lic.isValid(b), "space reusable after revoke");
    }

    function test_issueRoot_rejectsBadInput() public {
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.ExpiryInPast.selector, T0));
        lic.issueRoot(pre(0x2001, 16), 16, ALICE, T0);
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.HostBitsSet.selector, pre(0x20011, 20), 16));
        lic.issueRoot(pre(0x20011, 20), 16, ALICE, T0 + 1);
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.InvalidPrefixLength.selector, 257));
        lic.issueRoot(bytes32(0), 257, ALICE, T0 + 1);
        vm.expectRevert(abi.encodeWithSignature("ERC721InvalidReceiver(address)", address(0)));
        lic.issueRoot(pre(0x2001, 16), 16, address(0), T0 + 1);
    }

    // ------------------------------------------------------------ subdivide

    function test_subdivide_basic() public {
        uint256 r = rootFor(ALICE);
        vm.prank(ALICE);
        uint256 c = lic.subdivide(r, pre(0x20010db8, 32), 32, BOB, T0 + 100);
        (bytes32 prefix, uint16 len, uint256 parent, uint64 expiry,) = lic.segment(c);
        assertEq(prefix, pre(0x20010db8, 32), "child prefix");
        assertEq(len, 32, "child len");
        assertEq(parent, r, "child parent");
        assertEq(expiry, T0 + 100, "child expiry");
        assertEq(lic.ownerOf(c), BOB, "child holder");
        assertTrue(lic.isValid(c), "child valid");
    }

    function test_subdivide_onlyParentHolder() public {
        uint256 r = rootFor(ALICE);
        vm.prank(MALLORY);
        vm.expectRevert(err2(SegmentLicense.NotHolder.selector, r, MALLORY));
        lic.subdivide(r, pre(0x20010db8, 32), 32, MALLORY, T0 + 100);
        // Not even the allocator that issued the root.
        vm.expectRevert(err2(SegmentLicense.NotHolder.selector, r, address(this)));
        lic.subdivide(r, pre(0x20010db8, 32), 32, MALLORY, T0 + 100);
        // Nor the holder of a child, on the parent.
        vm.prank(ALICE);
        uint256 c = lic.subdivide(r, pre(0x20010db8, 32), 32, BOB, T0 + 100);
        vm.prank(BOB);
        vm.expectRevert(err2(SegmentLicense.NotHolder.selector, r, BOB));
        lic.subdivide(r, pre(0x20010db9, 32), 32, BOB, T0 + 100);
        vm.prank(BOB);
        lic.subdivide(c, pre(0x20010db80001, 48), 48, CAROL, T0 + 100);
        vm.expectRevert(err(SegmentLicense.NonexistentSegment.selector, 99));
        lic.subdivide(99, pre(0x20010db8, 32), 32, BOB, T0 + 100);
    }

    function test_subdivide_mustBeStrictlyInside() public {
        uint256 r = rootFor(ALICE);
        vm.startPrank(ALICE);
        bytes memory e;
        e = abi.encodeWithSelector(SegmentLicense.NotInsideParent.selector, r, pre(0x20020db8, 32), 32);
        vm.expectRevert(e); // another area
        lic.subdivide(r, pre(0x20020db8, 32), 32, BOB, T0 + 100);
        e = abi.encodeWithSelector(SegmentLicense.NotInsideParent.selector, r, pre(0x2001, 16), 16);
        vm.expectRevert(e); // the parent itself
        lic.subdivide(r, pre(0x2001, 16), 16, BOB, T0 + 100);
        e = abi.encodeWithSelector(SegmentLicense.NotInsideParent.selector, r, pre(0x20, 8), 8);
        vm.expectRevert(e); // larger than the parent
        lic.subdivide(r, pre(0x20, 8), 8, BOB, T0 + 100);
        e = abi.encodeWithSelector(SegmentLicense.HostBitsSet.selector, pre(0x20010db81, 36), 32);
        vm.expectRevert(e); // host bits set
        lic.subdivide(r, pre(0x20010db81, 36), 32, BOB, T0 + 100);
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.InvalidPrefixLength.selector, 300));
        lic.subdivide(r, pre(0x20010db8, 32), 300, BOB, T0 + 100);
        vm.stopPrank();
    }

    function test_subdivide_expiryBoundedByParent() public {
        uint256 r = rootFor(ALICE);
        vm.startPrank(ALICE);
        vm.expectRevert(
            abi.encodeWithSelector(SegmentLicense.ExpiryAfterParent.selector, T0 + YEAR + 1, T0 + YEAR)
        );
        lic.subdivide(r, pre(0x20010db8, 32), 32, BOB, T0 + YEAR + 1);
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.ExpiryInPast.selector, T0));
        lic.subdivide(r, pre(0x20010db8, 32), 32, BOB, T0);
        uint256 c = lic.subdivide(r, pre(0x20010db8, 32), 32, BOB, T0 + YEAR); // equal is fine
        vm.stopPrank();
        assertTrue(lic.isValid(c), "equal expiry");
    }

    function test_subdivide_neverOverlapsLiveSibling() public {
        uint256 r = rootFor(ALICE);
        vm.startPrank(ALICE);
        uint256 a = lic.subdivide(r, pre(0x20010db8, 32), 32, BOB, T0 + 100);
        vm.expectRevert(err(SegmentLicense.OverlapsSibling.selector, a)); // same block
        lic.subdivide(r, pre(0x20010db8, 32), 32, BOB, T0 + 100);
        vm.expectRevert(err(SegmentLicense.OverlapsSibling.selector, a)); // inside the sibling
        lic.subdivide(r, pre(0x20010db80001, 48), 48, BOB, T0 + 100);
        vm.expectRevert(err(SegmentLicense.OverlapsSibling.selector, a)); // around the sibling
        lic.subdivide(r, pre(0x20010d, 24), 24, BOB, T0 + 100);
        vm.expectRevert(err(SegmentLicense.OverlapsSibling.selector, a)); // a single address in it
        lic.subdivide(r, bytes32(uint256(pre(0x20010db8, 32)) | 7), 256, BOB, T0 + 100);
        uint256 b = lic.subdivide(r, pre(0x20010db9, 32), 32, BOB, T0 + 100); // adjacent
        uint256 c = lic.subdivide(r, pre(0x20010db0 >> 3, 29), 29, BOB, T0 + 100); // 0x20010db0/29, before
        vm.expectRevert(err(SegmentLicense.OverlapsSibling.selector, c));
        lic.subdivide(r, pre(0x20010d, 24), 24, BOB, T0 + 100);
        vm.stopPrank();
        // An overlap with a grandchild is not a sibling overlap: the child holder controls it.
        vm.prank(BOB);
        lic.subdivide(a, pre(0x20010db80001, 48), 48, CAROL, T0 + 100);
        assertTrue(lic.isValid(b), "b valid");
    }

    function test_subdivide_expiredSiblingStillBlocks_revokedDoesNot() public {
        uint256 r = rootFor(ALICE);
        vm.prank(ALICE);
        uint256 a = lic.subdivide(r, pre(0x20010db8, 32), 32, BOB, T0 + 100);
        vm.warp(T0 + 200); // a expired, still on record and renewable: it keeps its space
        vm.prank(ALICE);
        vm.expectRevert(err(SegmentLicense.OverlapsSibling.selector, a));
        lic.subdivide(r, pre(0x20010db8, 32), 32, CAROL, T0 + 1000);
        vm.prank(ALICE);
        lic.revoke(a);
        vm.prank(ALICE);
        uint256 b = lic.subdivide(r, pre(0x20010db8, 32), 32, CAROL, T0 + 1000);
        assertTrue(lic.isValid(b), "space of a revoked sibling is free");
    }

    function test_subdivide_invalidParent() public {
        uint256 r = rootFor(ALICE);
        vm.prank(ALICE);
        uint256 a = lic.subdivide(r, pre(0x20010db8, 32), 32, BOB, T0 + 100);
        vm.prank(ALICE);
        lic.revoke(a);
        vm.prank(BOB);
        vm.expectRevert(err(SegmentLicense.SegmentIsRevoked.selector, a));
        lic.subdivide(a, pre(0x20010db80001, 48), 48, CAROL, T0 + 100);
        vm.prank(ALICE);
        uint256 b = lic.subdivide(r, pre(0x20010db9, 32), 32, BOB, T0 + 100);
        vm.warp(T0 + 100);
        vm.prank(BOB);
        vm.expectRevert(err(SegmentLicense.SegmentIsExpired.selector, b));
        lic.subdivide(b, pre(0x20010db90001, 48), 48, CAROL, T0 + 100);
    }

    function test_transferThenSubdivideByNewHolder() public {
        uint256 r = rootFor(ALICE);
        vm.prank(ALICE);
        lic.setRouter(r, keccak256("router"), oneEndpoint());
        vm.recordLogs();
        vm.prank(ALICE);
        lic.transferFrom(ALICE, BOB, r);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bool cleared;
        for (uint256 i = 0; i < logs.length; i++) {
            if (logs[i].topics[0] == SegmentLicense.RouterSet.selector) cleared = true;
        }
        assertTrue(cleared, "transfer emits RouterSet clear");
        (bytes32 key, bytes memory eps) = lic.router(r);
        assertEq(key, bytes32(0), "router key cleared by transfer");
        assertEq(eps.length, 0, "endpoints cleared by transfer");
        vm.prank(ALICE);
        vm.expectRevert(err2(SegmentLicense.NotHolder.selector, r, ALICE));
        lic.subdivide(r, pre(0x20010db8, 32), 32, ALICE, T0 + 100);
        vm.prank(BOB);
        uint256 c = lic.subdivide(r, pre(0x20010db8, 32), 32, CAROL, T0 + 100);
        assertTrue(lic.isValid(c), "new holder subdivides");
        // The new holder also controls the children's lifecycle.
        vm.prank(ALICE);
        vm.expectRevert(err2(SegmentLicense.NotParentHolder.selector, c, ALICE));
        lic.revoke(c);
        vm.prank(BOB);
        lic.renew(c, T0 + 50);
        assertTrue(lic.ownerOf(r) == BOB && lic.tokenOfOwnerByIndex(BOB, 0) == r, "enumerable follows");
    }

    function test_lengths0And256() public {
        uint256 all = lic.issueRoot(bytes32(0), 0, ALICE, T0 + YEAR);
        vm.expectRevert(err(SegmentLicense.OverlapsSibling.selector, all));
        lic.issueRoot(pre(0x2001, 16), 16, BOB, T0 + YEAR);
        bytes32 host = keccak256("a wallet host");
        bytes32 neighbour = host ^ bytes32(uint256(1));
        vm.startPrank(ALICE);
        uint256 h = lic.subdivide(all, host, 256, BOB, T0 + 10);
        uint256 n = lic.subdivide(all, neighbour, 256, BOB, T0 + 10);
        vm.expectRevert(err(SegmentLicense.OverlapsSibling.selector, h));
        lic.subdivide(all, host, 256, BOB, T0 + 10);
        bytes32 pair = host & ~bytes32(uint256(1));
        vm.expectRevert(); // the /255 holds both
        lic.subdivide(all, pair, 255, BOB, T0 + 10);
        vm.stopPrank();
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.NotInsideParent.selector, h, host, 256));
        lic.subdivide(h, host, 256, CAROL, T0 + 10);
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.InvalidPrefixLength.selector, 257));
        lic.subdivide(h, host, 257, CAROL, T0 + 10);
        assertTrue(lic.isValid(h) && lic.isValid(n), "host routes valid");
        (bytes32 p, uint16 l,,,) = lic.segment(h);
        assertEq(p, host, "host prefix");
        assertEq(l, 256, "host len");
    }

    // ------------------------------------------------------------ validity chain

    function chain3() internal returns (uint256 r, uint256 c, uint256 g) {
        r = rootFor(ALICE);
        vm.prank(ALICE);
        c = lic.subdivide(r, pre(0x20010db8, 32), 32, BOB, T0 + 1000);
        vm.prank(BOB);
        g = lic.subdivide(c, pre(0x20010db80001, 48), 48, CAROL, T0 + 500);
    }

    function test_isValid_revokedAncestor() public {
        (uint256 r, uint256 c, uint256 g) = chain3();
        assertTrue(lic.isValid(g), "valid chain");
        lic.revoke(r);
        assertTrue(!lic.isValid(r) && !lic.isValid(c) && !lic.isValid(g), "revoked root kills the chain");
        (,,,, bool revoked) = lic.segment(g);
        assertTrue(!revoked, "descendant records untouched");
    }

    function test_isValid_revokedMiddle() public {
        (uint256 r, uint256 c, uint256 g) = chain3();
        vm.prank(ALICE);
        lic.revoke(c);
        assertTrue(lic.isValid(r) && !lic.isValid(c) && !lic.isValid(g), "revoked child kills grandchild");
        vm.prank(BOB); // the child holder still holds the token but cannot act on it
        vm.expectRevert(err(SegmentLicense.SegmentIsRevoked.selector, c));
        lic.subdivide(c, pre(0x20010db80002, 48), 48, CAROL, T0 + 100);
    }

    function test_isValid_expiryBoundaries() public {
        (uint256 r, uint256 c, uint256 g) = chain3();
        vm.warp(T0 + 499);
        assertTrue(lic.isValid(g), "valid one second before expiry");
        vm.warp(T0 + 500);
        assertTrue(!lic.isValid(g) && lic.isValid(c), "expired at its expiry second");
        vm.warp(T0 + YEAR);
        assertTrue(!lic.isValid(r) && !lic.isValid(c), "expired root");
        lic.renew(r, T0 + 2 * YEAR);
        assertTrue(lic.isValid(r) && !lic.isValid(c), "renewed root; child still past its own expiry");
    }

    function test_isValid_expiredAncestorShortenedByRenew() public {
        (uint256 r, uint256 c, uint256 g) = chain3();
        lic.renew(r, T0 + 100); // shorten the root below its descendants' expiry
        vm.warp(T0 + 100);
        assertTrue(!lic.isValid(r) && !lic.isValid(c) && !lic.isValid(g), "expired ancestor");
        (,,, uint64 e,) = lic.segment(g);
        assertEq(e, T0 + 500, "grandchild expiry unchanged");
        // Subdivide checks the parent's own record only (bounded gas): a child carved under an
        // expired ancestor is created, and is invalid like the rest of the chain.
        vm.prank(BOB);
        uint256 g2 = lic.subdivide(c, pre(0x20010db80002, 48), 48, CAROL, T0 + 200);
        assertTrue(!lic.isValid(g2), "child of an expired chain is invalid");
    }

    function test_isValid_unknownIds() public {
        rootFor(ALICE);
        assertTrue(!lic.isValid(0) && !lic.isValid(2) && !lic.isValid(type(uint256).max), "unknown");
        vm.expectRevert(err(SegmentLicense.NonexistentSegment.selector, 0));
        lic.segment(0);
        vm.expectRevert(err(SegmentLicense.NonexistentSegment.selector, 2));
        lic.router(2);
    }

    // ------------------------------------------------------------ revoke / renew

    function test_revoke_onlyParentHolder() public {
        (uint256 r, uint256 c, uint256 g) = chain3();
        vm.prank(CAROL); // its own holder cannot revoke it
        vm.expectRevert(err2(SegmentLicense.NotParentHolder.selector, g, CAROL));
        lic.revoke(g);
        vm.prank(ALICE); // nor a grandparent holder
        vm.expectRevert(err2(SegmentLicense.NotParentHolder.selector, g, ALICE));
        lic.revoke(g);
        vm.prank(ALICE); // roots: only an allocator
        vm.expectRevert(err2(SegmentLicense.NotParentHolder.selector, r, ALICE));
        lic.revoke(r);
        vm.recordLogs();
        vm.prank(BOB);
        lic.revoke(g);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "one event");
        assertEq(logs[0].topics[0], SegmentLicense.SegmentRevoked.selector, "SegmentRevoked");
        assertEq(uint256(logs[0].topics[1]), g, "revoked id");
        vm.prank(BOB);
        vm.expectRevert(err(SegmentLicense.SegmentIsRevoked.selector, g));
        lic.revoke(g);
        vm.expectRevert(err(SegmentLicense.NonexistentSegment.selector, 42));
        lic.revoke(42);
        assertTrue(lic.isValid(c), "sibling chain intact");
    }

    function test_renew_rules() public {
        (uint256 r, uint256 c, uint256 g) = chain3();
        vm.prank(CAROL);
        vm.expectRevert(err2(SegmentLicense.NotParentHolder.selector, g, CAROL));
        lic.renew(g, T0 + 600);
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.ExpiryAfterParent.selector, T0 + 1001, T0 + 1000));
        lic.renew(g, T0 + 1001);
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.ExpiryInPast.selector, T0));
        lic.renew(g, T0);
        vm.recordLogs();
        vm.prank(BOB);
        lic.renew(g, T0 + 1000);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs[0].topics[0], SegmentLicense.SegmentRenewed.selector, "SegmentRenewed");
        (,,, uint64 e,) = lic.segment(g);
        assertEq(e, T0 + 1000, "renewed");
        vm.prank(ALICE);
        vm.expectRevert(err2(SegmentLicense.NotParentHolder.selector, r, ALICE));
        lic.renew(r, T0 + 2 * YEAR);
        lic.renew(r, T0 + 10 * YEAR); // roots: the allocator, any future time
        vm.prank(ALICE);
        lic.revoke(c);
        vm.prank(ALICE);
        vm.expectRevert(err(SegmentLicense.SegmentIsRevoked.selector, c));
        lic.renew(c, T0 + 10);
    }

    // ------------------------------------------------------------ router

    function test_setRouter_roundTrip() public {
        uint256 r = rootFor(ALICE);
        SegmentLicense.Endpoint[] memory e = new SegmentLicense.Endpoint[](2);
        e[0] = ep4(0x7f000001, 5733);
        e[1] = SegmentLicense.Endpoint(6, bytes16(uint128(1)), 5734); // ::1
        bytes memory enc = abi.encode(e);
        vm.recordLogs();
        vm.prank(ALICE);
        lic.setRouter(r, keccak256("ed25519 router key"), enc);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs[0].topics[0], SegmentLicense.RouterSet.selector, "RouterSet");
        (bytes32 k, bytes memory got) = lic.router(r);
        assertEq(k, keccak256("ed25519 router key"), "router key");
        assertEq(got, enc, "endpoints");
        SegmentLicense.Endpoint[] memory d = abi.decode(got, (SegmentLicense.Endpoint[]));
        assertEq(d[1].port, 5734, "decoded port");
        vm.prank(ALICE);
        lic.setRouter(r, bytes32(0), "");
        (k, got) = lic.router(r);
        assertEq(got.length + uint256(k), 0, "cleared");
    }

    function test_setRouter_rejects() public {
        uint256 r = rootFor(ALICE);
        bytes32 k = keccak256("k");
        vm.prank(MALLORY);
        vm.expectRevert(err2(SegmentLicense.NotHolder.selector, r, MALLORY));
        lic.setRouter(r, k, oneEndpoint());
        vm.startPrank(ALICE);
        SegmentLicense.Endpoint[] memory e = new SegmentLicense.Endpoint[](1);
        e[0] = SegmentLicense.Endpoint(5, bytes16(0), 1);
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.InvalidEndpointFamily.selector, 0, 5));
        lic.setRouter(r, k, abi.encode(e));
        e[0] = SegmentLicense.Endpoint(4, bytes16(uint128(0x7f000001)), 1); // v4 not in the first 4 bytes
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.InvalidEndpointAddress.selector, 0));
        lic.setRouter(r, k, abi.encode(e));
        e[0] = ep4(0x7f000001, 0);
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.InvalidEndpointPort.selector, 0));
        lic.setRouter(r, k, abi.encode(e));
        vm.expectRevert(SegmentLicense.MalformedEndpoints.selector);
        lic.setRouter(r, k, hex"deadbeef");
        bytes memory trailing = bytes.concat(oneEndpoint(), bytes32(0));
        vm.expectRevert(SegmentLicense.MalformedEndpoints.selector);
        lic.setRouter(r, k, trailing);
        SegmentLicense.Endpoint[] memory many = new SegmentLicense.Endpoint[](17);
        for (uint256 i = 0; i < 17; i++) many[i] = ep4(0x7f000001, uint16(5000 + i));
        vm.expectRevert(abi.encodeWithSelector(SegmentLicense.TooManyEndpoints.selector, 17));
        lic.setRouter(r, k, abi.encode(many));
        vm.stopPrank();
        lic.revoke(r);
        vm.prank(ALICE);
        vm.expectRevert(err(SegmentLicense.SegmentIsRevoked.selector, r));
        lic.setRouter(r, k, oneEndpoint());
    }

    // ------------------------------------------------------------ events rebuild the state

    struct Seen {
        bytes32 prefix;
        uint16 len;
        uint256 parent;
        uint64 expiry;
        bool revoked;
        address holder;
        bytes32 routerKey;
        bytes endpoints;
    }

    function test_eventsRebuildState() public {
        vm.recordLogs();
        (uint256 r, uint256 c, uint256 g) = chain3();
        uint256 r2 = lic.issueRoot(pre(0x2002, 16), 16, BOB, T0 + YEAR);
        vm.prank(BOB);
        lic.setRouter(r2, keccak256("b"), oneEndpoint());
        vm.prank(ALICE);
        lic.setRouter(r, keccak256("a"), oneEndpoint());
        vm.prank(BOB);
        lic.renew(g, T0 + 900);
        vm.prank(ALICE);
        lic.transferFrom(ALICE, CAROL, r);
        vm.prank(CAROL);
        lic.revoke(c);
        vm.prank(CAROL);
        uint256 c2 = lic.subdivide(r, pre(0x20010db8, 32), 32, ALICE, T0 + 50);

        Vm.Log[] memory logs = vm.getRecordedLogs();
        Seen[] memory s = new Seen[](lic.nextId());
        bytes32 transferSig = keccak256("Transfer(address,address,uint256)");
        for (uint256 i = 0; i < logs.length; i++) {
            bytes32 t = logs[i].topics[0];
            if (logs[i].emitter != address(lic)) continue;
            if (t == SegmentLicense.SegmentIssued.selector) {
                uint256 id = uint256(logs[i].topics[1]);
                s[id].parent = uint256(logs[i].topics[2]);
                (s[id].prefix, s[id].len, s[id].expiry) = abi.decode(logs[i].data, (bytes32, uint16, uint64));
            } else if (t == SegmentLicense.SegmentRevoked.selector) {
                s[uint256(logs[i].topics[1])].revoked = true;
            } else if (t == SegmentLicense.SegmentRenewed.selector) {
                s[uint256(logs[i].topics[1])].expiry = abi.decode(logs[i].data, (uint64));
            } else if (t == SegmentLicense.RouterSet.selector) {
                uint256 id = uint256(logs[i].topics[1]);
                (s[id].routerKey, s[id].endpoints) = abi.decode(logs[i].data, (bytes32, bytes));
            } else if (t == transferSig) {
                s[uint256(logs[i].topics[3])].holder = address(uint160(uint256(logs[i].topics[2])));
            }
        }
        for (uint256 id = 1; id < lic.nextId(); id++) {
            (bytes32 p, uint16 l, uint256 par, uint64 e, bool rv) = lic.segment(id);
            assertTrue(
                p == s[id].prefix && l == s[id].len && par == s[id].parent && e == s[id].expiry
                    && rv == s[id].revoked,
                "segment rebuilt from logs"
            );
            assertEq(lic.ownerOf(id), s[id].holder, "holder rebuilt from logs");
            (bytes32 k, bytes memory eps) = lic.router(id);
            assertEq(k, s[id].routerKey, "router key rebuilt");
            assertEq(eps, s[id].endpoints, "endpoints rebuilt");
        }
        assertTrue(lic.isValid(c2) && !lic.isValid(g), "final state");
    }

    // ------------------------------------------------------------ fuzzed prefixes and lengths

    function testFuzz_hostBitsAndLength(bytes32 prefix, uint16 len) public {
        len = uint16(bound(len, 0, 300));
        bool hostSet = len < 256 && (uint256(prefix) & (type(uint256).max >> len)) != 0;
        if (len > 256) {
            vm.expectRevert(abi.encodeWithSelector(SegmentLicense.InvalidPrefixLength.selector, len));
        } else if (hostSet) {
            vm.expectRevert(abi.encodeWithSelector(SegmentLicense.HostBitsSet.selector, prefix, len));
        }
        lic.issueRoot(prefix, len, ALICE, T0 + 1);
    }

    function testFuzz_childInsideParent(bytes32 parentBits, uint16 plen, bytes32 childBits, uint16 clen) public {
        plen = uint16(bound(plen, 0, 256));
        clen = uint16(bound(clen, 0, 256));
        bytes32 pp = _mask(parentBits, plen);
        bytes32 cp = _mask(childBits, clen);
        // Half the runs: make the child share the parent's bits.
        if (uint256(childBits) & 1 == 1) cp = _mask(pp | (cp & ~_mask(bytes32(type(uint256).max), plen)), clen);
        uint256 r = lic.issueRoot(pp, plen, address(this), T0 + 10);
        bool inside = clen > plen && _mask(cp, plen) == pp;
        if (!inside) {
            vm.expectRevert(abi.encodeWithSelector(SegmentLicense.NotInsideParent.selector, r, cp, clen));
        }
        lic.subdivide(r, cp, clen, ALICE, T0 + 10);
    }

    function _mask(bytes32 v, uint16 len) internal pure returns (bytes32) {
        return len >= 256 ? v : v & ~bytes32(type(uint256).max >> len);
    }

    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }
}
