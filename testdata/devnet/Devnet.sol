// SPDX-License-Identifier: Apache-2.0
// Test contracts for ecld-devnet: compiled once with solc 0.8.28 (see compile.mjs); the
// artifacts next to this file are what the tests and the benchmark deploy.
pragma solidity 0.8.28;

/// A counter that logs every change and reverts with a custom error and a reason string.
contract Counter {
    uint256 public count;

    event Incremented(address indexed by, uint256 indexed newCount, uint256 amount);

    error TooBig(uint256 amount);

    function add(uint256 amount) external {
        if (amount > 100) revert TooBig(amount);
        require(amount != 0, "zero amount");
        count += amount;
        emit Incremented(msg.sender, count, amount);
    }
}

/// The smallest ERC-20-like token: balances, transfer, Transfer events.
contract Token {
    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 value);

    constructor(uint256 supply) {
        balanceOf[msg.sender] = supply;
        emit Transfer(address(0), msg.sender, supply);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        uint256 have = balanceOf[msg.sender];
        require(have >= value, "balance too low");
        balanceOf[msg.sender] = have - value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }
}
