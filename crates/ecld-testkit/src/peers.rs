//! The peers several tests share, named and with their installer as `scripts/peers` says them.

use crate::Peer;

const SETUP_NODE: &str = "run scripts/setup (Debian packages nodejs and npm)";
const SETUP_NPM: &str = "run scripts/setup (npm install in tools/)";
const SETUP_PIP: &str = "run scripts/setup (pip install -r tools/requirements.txt)";
const BUILD_RUNNERS: &str =
    "run scripts/build-programs (it builds the runner images with scripts/build-runners)";

/// Node.js: `node` on PATH.
pub const NODE: Peer<'static> = Peer { what: "node (Node.js)", install: SETUP_NODE };

/// Hardhat's node, the reference the devnet is compared with.
pub const HARDHAT: Peer<'static> =
    Peer { what: "hardhat (tools/node_modules/hardhat)", install: SETUP_NPM };

/// The pinned Solidity compiler (solc-js) that compiled the committed artifacts.
pub const SOLC: Peer<'static> = Peer { what: "solc (tools/node_modules/solc)", install: SETUP_NPM };

/// ethers, an independent chain client.
pub const ETHERS: Peer<'static> =
    Peer { what: "ethers (tools/node_modules/ethers)", install: SETUP_NPM };

/// js-ipfs, an independent IPFS implementation.
pub const JS_IPFS: Peer<'static> =
    Peer { what: "js-ipfs (tools/node_modules/.bin/jsipfs, npm package ipfs)", install: SETUP_NPM };

/// eth-account, an independent EIP-712 implementation (Python).
pub const ETH_ACCOUNT: Peer<'static> =
    Peer { what: "eth_account (Python module, PyPI eth-account)", install: SETUP_PIP };

/// web3.py, an independent chain client (Python).
pub const WEB3: Peer<'static> =
    Peer { what: "web3 (Python module, PyPI web3)", install: SETUP_PIP };

/// The Python runner image.
pub const PYTHON_RUNNER: Peer<'static> =
    Peer { what: "the Python runner image (programs/out/python.wasm)", install: BUILD_RUNNERS };

/// The JavaScript runner image.
pub const JS_RUNNER: Peer<'static> =
    Peer { what: "the JavaScript runner image (programs/out/js.wasm)", install: BUILD_RUNNERS };
