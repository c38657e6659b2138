// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title ImageRegistry: the images ecld nodes run, and the keys their enclaves hold.
/// @notice An image id is keccak256(abi.encode(manifest)): it names exactly one set of
///         published fields and never changes meaning. A new version is a new id. Anyone may
///         publish a manifest (the id pins its content, owner included); only the owner may
///         deprecate it, which stops new tasks for it while running tasks still settle, or
///         revoke it (its enclave key leaked, or its code is unsafe), which from that block
///         refuses every claim and proof for it and lets requesters take their escrow back.
contract ImageRegistry {
    /// TEE platform bits.
    uint8 public constant PLATFORM_SIM = 1;
    uint8 public constant PLATFORM_SGX = 2;
    uint8 public constant PLATFORM_TDX = 4;

    /// The published fields of an image. The id is keccak256(abi.encode(manifest)).
    struct ImageManifest {
        /// CID of the image's code (a WebAssembly module) in the store.
        string codeCid;
        /// Measurement the CAS requires of an enclave before provisioning its secrets.
        bytes32 measurement;
        /// X25519 public key inputs are encrypted to.
        bytes32 enclaveKey;
        /// Address of the secp256k1 key that signs proofs of execution.
        address enclaveSigner;
        /// Signing identity of the CAS that provisions the image's secrets.
        address casIdentity;
        /// Allowed TEE platforms, a bitmask of PLATFORM_*.
        uint8 platforms;
        /// Who may deprecate the image.
        address owner;
        string name;
        string version;
    }

    /// Stored form. The first slot holds what the Marketplace reads, so its check costs one
    /// storage read.
    struct Image {
        address enclaveSigner;
        uint8 platforms;
        bool deprecated;
        bool revoked;
        address owner;
        address casIdentity;
        bytes32 measurement;
        bytes32 enclaveKey;
        string codeCid;
        string name;
        string version;
    }

    mapping(bytes32 => Image) private images;

    event ImagePublished(
        bytes32 indexed imageId,
        address indexed owner,
        address indexed enclaveSigner,
        bytes32 measurement,
        bytes32 enclaveKey,
        address casIdentity,
        uint8 platforms,
        string codeCid,
        string name,
        string version
    );
    event ImageDeprecated(bytes32 indexed imageId);
    /// The image's enclave signer is no longer trusted: no claim or proof for it is accepted.
    event ImageRevoked(bytes32 indexed imageId, address indexed enclaveSigner);

    /// An image with this id is already published; publish a new version instead.
    error ImageExists(bytes32 imageId);
    /// No image with this id has been published.
    error UnknownImage(bytes32 imageId);
    /// Only the image's owner may do this.
    error NotImageOwner(bytes32 imageId, address caller, address owner);
    /// A manifest field is invalid: signer and owner must be non-zero, platforms within 1..7.
    error InvalidManifest(string reason);

    /// @notice The id a manifest would get.
    function imageIdOf(ImageManifest calldata m) public pure returns (bytes32) {
        return keccak256(abi.encode(m));
    }

    /// @notice Publishes an image; reverts with ImageExists if the id is taken.
    function publish(ImageManifest calldata m) external returns (bytes32 imageId) {
        if (m.enclaveSigner == address(0)) revert InvalidManifest("enclaveSigner is zero");
        if (m.owner == address(0)) revert InvalidManifest("owner is zero");
        if (m.platforms == 0 || m.platforms > 7) revert InvalidManifest("platforms must be a bitmask within 1..7");
        imageId = imageIdOf(m);
        Image storage img = images[imageId];
        if (img.enclaveSigner != address(0)) revert ImageExists(imageId);
        img.enclaveSigner = m.enclaveSigner;
        img.platforms = m.platforms;
        img.owner = m.owner;
        img.casIdentity = m.casIdentity;
        img.measurement = m.measurement;
        img.enclaveKey = m.enclaveKey;
        img.codeCid = m.codeCid;
        img.name = m.name;
        img.version = m.version;
        emit ImagePublished(
            imageId,
            m.owner,
            m.enclaveSigner,
            m.measurement,
            m.enclaveKey,
            m.casIdentity,
            m.platforms,
            m.codeCid,
            m.name,
            m.version
        );
    }

    /// @notice Stops new tasks for the image. Tasks already submitted still settle.
    function deprecate(bytes32 imageId) external {
        Image storage img = _owned(imageId);
        img.deprecated = true;
        emit ImageDeprecated(imageId);
    }

    /// @notice Revokes the image for good: from this block the Marketplace refuses claims and
    ///         proofs for it, and its open and held tasks can be reclaimed by their requesters
    ///         at once. Also deprecates it. Revoking twice is a no-op.
    function revoke(bytes32 imageId) external {
        Image storage img = _owned(imageId);
        if (img.revoked) return;
        img.deprecated = true;
        img.revoked = true;
        emit ImageRevoked(imageId, img.enclaveSigner);
    }

    function _owned(bytes32 imageId) private view returns (Image storage img) {
        img = images[imageId];
        if (img.enclaveSigner == address(0)) revert UnknownImage(imageId);
        if (img.owner != msg.sender) revert NotImageOwner(imageId, msg.sender, img.owner);
    }

    /// @notice The image's full record; reverts with UnknownImage if it does not exist.
    function getImage(bytes32 imageId) external view returns (Image memory) {
        Image memory img = images[imageId];
        if (img.enclaveSigner == address(0)) revert UnknownImage(imageId);
        return img;
    }

    /// @notice What the Marketplace checks, in one storage read. signer is zero for an unknown
    ///         image.
    function imageStatus(bytes32 imageId)
        external
        view
        returns (address signer, uint8 platforms, bool deprecated, bool revoked)
    {
        Image storage img = images[imageId];
        return (img.enclaveSigner, img.platforms, img.deprecated, img.revoked);
    }
}
