// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title DevToken: the ERC-20 dev currency of ecld, with EIP-2612 permit.
/// @notice Minted to the dev accounts at deployment; the deployer (minter) can mint more for
///         new dev accounts. The Marketplace accepts any ERC-20; this one exists so a local
///         stack has money to move. Tokens reach the Marketplace (`escrow`) only when it pulls
///         them itself (deposits and escrows): a plain transfer to it, which nothing there
///         could ever give back, is refused.
contract DevToken {
    string public name;
    string public symbol;
    uint8 public constant decimals = 18;
    uint256 public totalSupply;
    address public immutable minter;
    /// The Marketplace: takes tokens only by pulling them (transferFrom it sends itself).
    address public immutable escrow;

    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    mapping(address => uint256) public nonces;

    bytes32 private constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");
    uint256 private immutable cachedChainId;
    bytes32 private immutable cachedDomainSeparator;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// The sender's balance is lower than the amount.
    error InsufficientBalance(address from, uint256 balance, uint256 needed);
    /// The spender's allowance is lower than the amount.
    error InsufficientAllowance(address owner, address spender, uint256 allowance, uint256 needed);
    /// The permit's deadline has passed.
    error PermitExpired(uint256 deadline);
    /// The permit was not signed by the owner (or was already used: nonces advance).
    error InvalidPermitSignature(address recovered, address owner);
    /// A transfer to the Marketplace it did not pull itself: it would be stuck there, owed
    /// to nobody. Use its deposit call instead.
    error DirectTransferRefused(address to);
    /// Only the minter may mint.
    error NotMinter(address caller);

    constructor(
        string memory name_,
        string memory symbol_,
        address[] memory holders,
        uint256 amountEach,
        address escrow_
    ) {
        name = name_;
        escrow = escrow_;
        symbol = symbol_;
        minter = msg.sender;
        cachedChainId = block.chainid;
        cachedDomainSeparator = _domainSeparator();
        for (uint256 i = 0; i < holders.length; ++i) {
            _mint(holders[i], amountEach);
        }
    }

    /// @notice Mints `amount` to `to`. Only the deployer.
    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _mint(to, amount);
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        if (to == escrow) revert DirectTransferRefused(to);
        _move(msg.sender, to, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        if (to == escrow && msg.sender != escrow) revert DirectTransferRefused(to);
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < value) revert InsufficientAllowance(from, msg.sender, allowed, value);
            unchecked {
                allowance[from][msg.sender] = allowed - value;
            }
        }
        _move(from, to, value);
        return true;
    }

    /// @notice EIP-2612: sets `allowance[owner][spender] = value` from the owner's signature.
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
    {
        if (block.timestamp > deadline) revert PermitExpired(deadline);
        bytes32 digest;
        unchecked {
            digest = keccak256(
                abi.encodePacked(
                    "\x19\x01",
                    DOMAIN_SEPARATOR(),
                    keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, nonces[owner]++, deadline))
                )
            );
        }
        address recovered = ecrecover(digest, v, r, s);
        if (recovered == address(0) || recovered != owner) revert InvalidPermitSignature(recovered, owner);
        allowance[owner][spender] = value;
        emit Approval(owner, spender, value);
    }

    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() public view returns (bytes32) {
        return block.chainid == cachedChainId ? cachedDomainSeparator : _domainSeparator();
    }

    function _domainSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256(bytes(name)),
                keccak256("1"),
                block.chainid,
                address(this)
            )
        );
    }

    function _move(address from, address to, uint256 value) private {
        uint256 balance = balanceOf[from];
        if (balance < value) revert InsufficientBalance(from, balance, value);
        unchecked {
            balanceOf[from] = balance - value;
            // Cannot overflow: the sum of all balances is totalSupply, which is checked at mint.
            balanceOf[to] += value;
        }
        emit Transfer(from, to, value);
    }

    function _mint(address to, uint256 amount) private {
        totalSupply += amount;
        unchecked {
            balanceOf[to] += amount;
        }
        emit Transfer(address(0), to, amount);
    }
}
