//! Interop with a real IPFS implementation: js-ipfs 0.66 (`jsipfs daemon --offline`).
