// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// The few forge cheat codes these tests use (forge-std is not used: its npm package is broken).
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function warp(uint256 timestamp) external;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert(bytes4 selector) external;
    function expectRevert() external;
    function assume(bool condition) external pure;
    function cool(address target) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);
}

/// Minimal test base: the cheat-code handle, console output forge prints with -vv, assertions.
abstract contract TestBase {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    address private constant CONSOLE = 0x000000000000000000636F6e736F6c652e6c6f67;

    function log(string memory s, uint256 v) internal view {
        (bool ok,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string,uint256)", s, v));
        ok;
    }

    function fail(string memory why) internal pure {
        revert(string.concat("assertion failed: ", why));
    }

    function assertTrue(bool c, string memory why) internal pure {
        if (!c) fail(why);
    }

    function assertEq(uint256 a, uint256 b, string memory why) internal pure {
        if (a != b) fail(string.concat(why, " (", _str(a), " != ", _str(b), ")"));
    }

    function assertEq(bytes32 a, bytes32 b, string memory why) internal pure {
        if (a != b) fail(why);
    }

    function assertEq(address a, address b, string memory why) internal pure {
        if (a != b) fail(why);
    }

    function assertEq(bytes memory a, bytes memory b, string memory why) internal pure {
        if (keccak256(a) != keccak256(b)) fail(why);
    }

    function _str(uint256 v) private pure returns (string memory) {
        if (v == 0) return "0";
        bytes memory b = new bytes(78);
        uint256 n;
        while (v != 0) {
            b[77 - n] = bytes1(uint8(48 + v % 10));
            v /= 10;
            n++;
        }
        bytes memory out = new bytes(n);
        for (uint256 i = 0; i < n; i++) out[i] = b[78 - n + i];
        return string(out);
    }
}
