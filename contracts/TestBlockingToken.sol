// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title TestBlockingToken: an ERC-20 for tests only, whose owner can block accounts from
///        receiving, as blocklisting tokens do (and as a recipient hook that reverts would).
/// @notice Not part of a deployment; the contract tests use it to check that a requester who
///         refuses its refund cannot stop a proof from settling.
contract TestBlockingToken {
    address public immutable owner;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    mapping(address => bool) public blocked;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    error Blocked(address to);
    error Insufficient();

    constructor(address[] memory holders, uint256 amountEach) {
        owner = msg.sender;
        for (uint256 i = 0; i < holders.length; ++i) {
            balanceOf[holders[i]] = amountEach;
            emit Transfer(address(0), holders[i], amountEach);
        }
    }

    function setBlocked(address account, bool value) external {
        if (msg.sender != owner) revert Insufficient();
        blocked[account] = value;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _move(msg.sender, to, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        if (allowance[from][msg.sender] < value) revert Insufficient();
        allowance[from][msg.sender] -= value;
        _move(from, to, value);
        return true;
    }

    /// No permits: calls fail, as with tokens without EIP-2612.
    function permit(address, address, uint256, uint256, uint8, bytes32, bytes32) external pure {
        revert Insufficient();
    }

    function _move(address from, address to, uint256 value) private {
        if (blocked[to]) revert Blocked(to);
        if (balanceOf[from] < value) revert Insufficient();
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}
