//! Real clients nobody here wrote (Python web3, npm ethers) drive the devnet.
