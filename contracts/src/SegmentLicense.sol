// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721Enumerable} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721Enumerable.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title SegmentLicense: blocks of the 256-bit unicast space as ERC-721 tokens.
/// @notice Each token is a segment `prefix/prefixLen` of the 256-bit address space.
/// `prefix` is the address with bit 0 = the most significant bit of byte 0; every bit at or
/// beyond `prefixLen` (the host bits) must be zero. Roots are issued by an allocator; the holder
/// of a segment may subdivide it into children that lie strictly inside it, never overlap a
/// live (not revoked) sibling, and expire no later than it. A segment is valid while it and
/// every ancestor is neither revoked nor expired (`block.timestamp < expiry`).
///
/// Live siblings are indexed per parent in a crit-bit tree whose internal nodes live in the
/// spare half of each token's record, so a subdivide takes no storage slot beyond the token's
/// own (it rewrites one existing pointer) and walks at most MAX_SIBLING_DEPTH nodes: its gas is
/// bounded whatever the prefix lengths.
///
/// Every state change emits an event (SegmentIssued, SegmentRevoked, SegmentRenewed,
/// RouterSet, plus ERC-721 Transfer and AccessControl role events), so the whole state can be
/// rebuilt from logs alone.
contract SegmentLicense is ERC721Enumerable, AccessControl {
    /// Role allowed to issue, revoke and renew roots.
    bytes32 public constant ALLOCATOR_ROLE = keccak256("ALLOCATOR_ROLE");
    /// Longest walk through a parent's sibling index that issueRoot/subdivide accept. It bounds
    /// their gas; equal-size siblings reach it only past 2^MAX_SIBLING_DEPTH children.
    uint256 public constant MAX_SIBLING_DEPTH = 20;
    /// Most endpoints a router entry may list.
    uint256 public constant MAX_ENDPOINTS = 16;

    /// One router endpoint: family 4 (IPv4 in the first 4 bytes of addr, the rest zero) or
    /// family 6 (IPv6, all 16 bytes), UDP port (non-zero).
    struct Endpoint {
        uint8 family;
        bytes16 addr;
        uint16 port;
    }

    // Two storage slots per token. Slot 0: prefix. Slot 1: the segment's fields plus the
    // crit-bit node this token owns in its parent's sibling index (if `hasNode`).
    struct Record {
        bytes32 prefix;
        uint16 prefixLen;
        uint40 parentId;
        uint64 expiry;
        bool revoked;
        bool hasNode;
        uint8 critBit; // bit tested by the owned node (0 = MSB)
        uint48 left; // child refs: 0 none, (id << 1) | 1 leaf `id`, (id << 1) node owned by `id`
        uint48 right;
    }

    mapping(uint256 => Record) private _records;
    mapping(uint256 => uint48) private _siblingRoot; // parentId (0 = roots) => ref
    mapping(uint256 => bytes32) private _routerKeys;
    mapping(uint256 => uint256[]) private _endpoints; // one word each: family | addr | port
    uint256 private _nextId = 1;

    // ---------------------------------------------------------------- events

    /// A segment was created (root when parentId == 0); the holder is in the Transfer event.
    event SegmentIssued(
        uint256 indexed id, uint256 indexed parentId, bytes32 prefix, uint16 prefixLen, uint64 expiry
    );
    /// A segment was revoked; it stays on record, invalid, and its space is free again.
    event SegmentRevoked(uint256 indexed id);
    /// A segment's expiry changed.
    event SegmentRenewed(uint256 indexed id, uint64 expiry);
    /// A segment's router changed. Emitted with empty values when a transfer clears it.
    event RouterSet(uint256 indexed id, bytes32 routerKey, bytes endpoints);

    // ---------------------------------------------------------------- errors

    error NonexistentSegment(uint256 id);
    error InvalidPrefixLength(uint16 prefixLen);
    error HostBitsSet(bytes32 prefix, uint16 prefixLen);
    error NotInsideParent(uint256 parentId, bytes32 prefix, uint16 prefixLen);
    error OverlapsSibling(uint256 siblingId);
    error NotHolder(uint256 id, address caller);
    error NotParentHolder(uint256 id, address caller);
    error SegmentIsRevoked(uint256 id);
    error SegmentIsExpired(uint256 id);
    error ExpiryInPast(uint64 expiry);
    error ExpiryAfterParent(uint64 expiry, uint64 parentExpiry);
    error SiblingIndexTooDeep(uint256 parentId);
    error TooManySegments();
    error MalformedEndpoints();
    error TooManyEndpoints(uint256 count);
    error InvalidEndpointFamily(uint256 index, uint8 family);
    error InvalidEndpointAddress(uint256 index);
    error InvalidEndpointPort(uint256 index);

    constructor(address admin) ERC721("chainroute segment license", "SEG") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ALLOCATOR_ROLE, admin);
    }

    // ---------------------------------------------------------------- writes

    /// Issue a root segment (no parent). Roots never overlap a live root.
    function issueRoot(bytes32 prefix, uint16 prefixLen, address to, uint64 expiry)
        external
        onlyRole(ALLOCATOR_ROLE)
        returns (uint256 id)
    {
        _checkPrefix(prefix, prefixLen);
        if (expiry <= block.timestamp) revert ExpiryInPast(expiry);
        id = _create(0, prefix, prefixLen, expiry);
        _mint(to, id);
    }

    /// Carve a child out of `parentId`; only the parent's holder, while the parent itself is
    /// neither revoked nor expired.
    function subdivide(uint256 parentId, bytes32 prefix, uint16 prefixLen, address to, uint64 expiry)
        external
        returns (uint256 id)
    {
        Record storage p = _record(parentId);
        if (_ownerOf(parentId) != msg.sender) revert NotHolder(parentId, msg.sender);
        if (p.revoked) revert SegmentIsRevoked(parentId);
        uint64 parentExpiry = p.expiry;
        if (parentExpiry <= block.timestamp) revert SegmentIsExpired(parentId);
        _checkPrefix(prefix, prefixLen);
        uint16 parentLen = p.prefixLen;
        if (prefixLen <= parentLen || (uint256(prefix) & ~_hostMask(parentLen)) != uint256(p.prefix)) {
            revert NotInsideParent(parentId, prefix, prefixLen);
        }
        if (expiry > parentExpiry) revert ExpiryAfterParent(expiry, parentExpiry);
        if (expiry <= block.timestamp) revert ExpiryInPast(expiry);
        id = _create(parentId, prefix, prefixLen, expiry);
        _mint(to, id);
    }

    /// Revoke a segment: by the holder of its parent (an allocator for roots). Its space becomes
    /// free for a new sibling; it and all its descendants become invalid for good.
    function revoke(uint256 id) external {
        Record storage r = _record(id);
        _checkParentHolder(id, r.parentId);
        if (r.revoked) revert SegmentIsRevoked(id);
        r.revoked = true;
        _removeSibling(r.parentId, id, uint256(r.prefix));
        emit SegmentRevoked(id);
    }

    /// Set a new expiry (later or earlier): by the holder of the parent (an allocator for roots),
    /// in the future and never past the parent's expiry.
    function renew(uint256 id, uint64 expiry) external {
        Record storage r = _record(id);
        uint256 parentId = r.parentId;
        _checkParentHolder(id, parentId);
        if (r.revoked) revert SegmentIsRevoked(id);
        if (expiry <= block.timestamp) revert ExpiryInPast(expiry);
        if (parentId != 0) {
            uint64 parentExpiry = _records[parentId].expiry;
            if (expiry > parentExpiry) revert ExpiryAfterParent(expiry, parentExpiry);
        }
        r.expiry = expiry;
        emit SegmentRenewed(id, expiry);
    }

    /// Name the router that serves a segment: its Ed25519 key and its endpoints, ABI-encoded
    /// as `(uint8 family, bytes16 addr, uint16 port)[]`. Only the holder. An empty list and a
    /// zero key clear it. A transfer clears it too.
    function setRouter(uint256 id, bytes32 routerKey, bytes calldata endpoints) external {
        Record storage r = _record(id);
        if (_ownerOf(id) != msg.sender) revert NotHolder(id, msg.sender);
        if (r.revoked) revert SegmentIsRevoked(id);
        _routerKeys[id] = routerKey;
        _endpoints[id] = _packEndpoints(endpoints);
        emit RouterSet(id, routerKey, endpoints);
    }

    // ---------------------------------------------------------------- views

    /// True when the segment exists and neither it nor any ancestor is revoked or expired.
    function isValid(uint256 id) external view returns (bool) {
        if (id == 0 || id >= _nextId) return false;
        while (id != 0) {
            Record storage r = _records[id];
            if (r.revoked || r.expiry <= block.timestamp) return false;
            id = r.parentId;
        }
        return true;
    }

    function segment(uint256 id)
        external
        view
        returns (bytes32 prefix, uint16 prefixLen, uint256 parentId, uint64 expiry, bool revoked)
    {
        Record storage r = _record(id);
        return (r.prefix, r.prefixLen, r.parentId, r.expiry, r.revoked);
    }

    /// The segment's router: its key and its endpoints, ABI-encoded as given to setRouter.
    function router(uint256 id) external view returns (bytes32 routerKey, bytes memory endpoints) {
        _record(id);
        uint256[] storage packed = _endpoints[id];
        if (packed.length != 0) {
            Endpoint[] memory eps = new Endpoint[](packed.length);
            for (uint256 i = 0; i < eps.length; i++) {
                uint256 w = packed[i];
                eps[i] = Endpoint(uint8(w >> 144), bytes16(uint128(w >> 16)), uint16(w));
            }
            endpoints = abi.encode(eps);
        }
        return (_routerKeys[id], endpoints);
    }

    /// The id the next issued segment gets (ids start at 1; 0 means "no parent").
    function nextId() external view returns (uint256) {
        return _nextId;
    }

    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC721Enumerable, AccessControl)
        returns (bool)
    {
        return super.supportsInterface(interfaceId);
    }

    // ---------------------------------------------------------------- internals

    function _record(uint256 id) private view returns (Record storage) {
        if (id == 0 || id >= _nextId) revert NonexistentSegment(id);
        return _records[id];
    }

    function _checkParentHolder(uint256 id, uint256 parentId) private view {
        if (parentId == 0) {
            if (!hasRole(ALLOCATOR_ROLE, msg.sender)) revert NotParentHolder(id, msg.sender);
        } else if (_ownerOf(parentId) != msg.sender) {
            revert NotParentHolder(id, msg.sender);
        }
    }

    function _hostMask(uint16 prefixLen) private pure returns (uint256) {
        return prefixLen >= 256 ? 0 : type(uint256).max >> prefixLen;
    }

    function _checkPrefix(bytes32 prefix, uint16 prefixLen) private pure {
        if (prefixLen > 256) revert InvalidPrefixLength(prefixLen);
        if (uint256(prefix) & _hostMask(prefixLen) != 0) revert HostBitsSet(prefix, prefixLen);
    }

    function _create(uint256 parentId, bytes32 prefix, uint16 prefixLen, uint64 expiry)
        private
        returns (uint256 id)
    {
        id = _nextId;
        if (id > type(uint40).max) revert TooManySegments();
        _nextId = id + 1;
        Record storage r = _records[id];
        r.prefix = prefix;
        // One write for the whole second slot; the sibling index may fill in the node fields.
        r.prefixLen = prefixLen;
        r.parentId = uint40(parentId);
        r.expiry = expiry;
        _insertSibling(parentId, id, uint256(prefix), prefixLen);
        emit SegmentIssued(id, parentId, prefix, prefixLen, expiry);
    }

    // Clears the router on a transfer (not on mint): a buyer never inherits the seller's router.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && to != address(0) && from != to) {
            if (_routerKeys[tokenId] != bytes32(0) || _endpoints[tokenId].length != 0) {
                delete _routerKeys[tokenId];
                delete _endpoints[tokenId];
                emit RouterSet(tokenId, bytes32(0), "");
            }
        }
    }

    /// Validates the endpoint list and packs each endpoint into one word. Only the canonical ABI
    /// encoding is accepted, so router() returns exactly the bytes that were set.
    function _packEndpoints(bytes calldata data) private pure returns (uint256[] memory packed) {
        if (data.length == 0) return packed;
        if (data.length < 64) revert MalformedEndpoints();
        uint256 offset = uint256(bytes32(data[0:32]));
        uint256 count = uint256(bytes32(data[32:64]));
        if (offset != 32) revert MalformedEndpoints();
        if (count > MAX_ENDPOINTS) revert TooManyEndpoints(count);
        if (data.length != 64 + count * 96) revert MalformedEndpoints();
        Endpoint[] memory eps = abi.decode(data, (Endpoint[]));
        packed = new uint256[](eps.length);
        for (uint256 i = 0; i < eps.length; i++) {
            Endpoint memory e = eps[i];
            if (e.family == 4) {
                if (uint128(e.addr) & type(uint96).max != 0) revert InvalidEndpointAddress(i);
            } else if (e.family != 6) {
                revert InvalidEndpointFamily(i, e.family);
            }
            if (e.port == 0) revert InvalidEndpointPort(i);
            packed[i] = (uint256(e.family) << 144) | (uint256(uint128(e.addr)) << 16) | e.port;
        }
    }

    // ------------------------------------------------ sibling index (crit-bit tree)
    //
    // Keys are the live children of one parent: prefix-free bit strings (no two overlap).
    // A node tests bit `critBit`; every leaf below it agrees on all bits before that. The leaf
    // reached by following a key's bits shares the longest common prefix with that key, so one
    // comparison with that leaf decides overlap. A tree of k leaves has k - 1 nodes; each node is
    // stored in the record of a token below it (the one whose insertion created it, or one it was
    // moved to on a removal), so inserting takes no storage slot beyond the new token's record.

    function _bit(uint256 key, uint256 pos) private pure returns (bool) {
        return (key >> (255 - pos)) & 1 == 1;
    }

    function _clz(uint256 x) private pure returns (uint256 n) {
        if (x == 0) return 256;
        if (x >> 128 == 0) { n += 128; x <<= 128; }
        if (x >> 192 == 0) { n += 64; x <<= 64; }
        if (x >> 224 == 0) { n += 32; x <<= 32; }
        if (x >> 240 == 0) { n += 16; x <<= 16; }
        if (x >> 248 == 0) { n += 8; x <<= 8; }
        if (x >> 252 == 0) { n += 4; x <<= 4; }
        if (x >> 254 == 0) { n += 2; x <<= 2; }
        if (x >> 255 == 0) { n += 1; }
    }

    function _insertSibling(uint256 parentId, uint256 id, uint256 key, uint16 len) private {
        uint48 ref = _siblingRoot[parentId];
        uint48 leafRef = uint48((id << 1) | 1);
        if (ref == 0) {
            _siblingRoot[parentId] = leafRef;
            return;
        }
        // Walk 1: find the leaf closest to `key`.
        uint256 steps;
        while (ref & 1 == 0) {
            if (++steps > MAX_SIBLING_DEPTH) revert SiblingIndexTooDeep(parentId);
            Record storage n = _records[ref >> 1];
            uint256 c = n.critBit;
            ref = (c < len && _bit(key, c)) ? n.right : n.left;
        }
        uint256 otherId = ref >> 1;
        Record storage other = _records[otherId];
        uint256 otherLen = other.prefixLen;
        uint256 common = _clz(key ^ uint256(other.prefix));
        if (common >= (len < otherLen ? len : otherLen)) revert OverlapsSibling(otherId);

        // Walk 2 (warm): find where a node testing bit `common` belongs on the key's path.
        uint256 loc; // pointer to replace (see _setPointer)
        ref = _siblingRoot[parentId];
        while (ref & 1 == 0) {
            Record storage n = _records[ref >> 1];
            uint256 c = n.critBit;
            if (c > common) break;
            bool dir = _bit(key, c);
            loc = (ref & ~uint256(1)) | (dir ? 1 : 0);
            ref = dir ? n.right : n.left;
        }
        Record storage self = _records[id];
        self.hasNode = true;
        self.critBit = uint8(common);
        if (_bit(key, common)) {
            self.left = ref;
            self.right = leafRef;
        } else {
            self.left = leafRef;
            self.right = ref;
        }
        _setPointer(parentId, loc, uint48(id << 1));
    }

    // A pointer location: 0 is the parent's root pointer, (owner << 1) | right is the left
    // (right = 0) or right (right = 1) child pointer of the node owned by `owner`.
    function _setPointer(uint256 parentId, uint256 loc, uint48 ref) private {
        if (loc == 0) _siblingRoot[parentId] = ref;
        else if (loc & 1 == 1) _records[loc >> 1].right = ref;
        else _records[loc >> 1].left = ref;
    }

    function _removeSibling(uint256 parentId, uint256 id, uint256 key) private {
        uint48 ref = _siblingRoot[parentId];
        uint256 leafLoc; // pointer to the leaf
        uint256 parentLoc; // pointer to the node holding leafLoc
        uint256 ownLoc; // pointer to the node owned by `id`, if it has one
        while (ref & 1 == 0) {
            uint256 nid = ref >> 1;
            Record storage n = _records[nid];
            if (nid == id) ownLoc = leafLoc;
            parentLoc = leafLoc;
            bool dir = _bit(key, n.critBit);
            leafLoc = (nid << 1) | (dir ? 1 : 0);
            ref = dir ? n.right : n.left;
        }
        assert(ref == uint48((id << 1) | 1));
        Record storage self = _records[id];
        if (leafLoc == 0) {
            _siblingRoot[parentId] = 0; // it was alone; a lone leaf owns no node
            return;
        }
        uint256 parentNode = leafLoc >> 1;
        Record storage p = _records[parentNode];
        // Splice the leaf's parent node out: its other child takes its place.
        _setPointer(parentId, parentLoc, leafLoc & 1 == 1 ? p.left : p.right);
        if (parentNode != id) {
            if (self.hasNode) {
                // Move the node owned by `id` (an ancestor of parentNode) into parentNode's record.
                p.critBit = self.critBit;
                p.left = self.left;
                p.right = self.right;
                _setPointer(parentId, ownLoc, uint48(parentNode << 1));
            } else {
                // `id` was the one leaf without a node; now parentNode's owner is.
                p.hasNode = false;
                p.critBit = 0;
                p.left = 0;
                p.right = 0;
            }
        }
        self.hasNode = false;
        self.critBit = 0;
        self.left = 0;
        self.right = 0;
    }
}
