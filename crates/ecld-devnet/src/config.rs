//! Configuration of a devnet: what [`crate::spawn`] is given.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy_primitives::U256;
use serde::{Deserialize, Serialize};

/// The test mnemonic every Ethereum development chain (hardhat, anvil, ganache) uses.
pub const TEST_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Chain id hardhat and anvil use for local chains.
pub const DEFAULT_CHAIN_ID: u64 = 31337;

/// How a devnet is set up. Every field has a default ([`DevnetConfig::default`]) that matches
/// `hardhat node`, except the bind address, which defaults to `127.0.0.1:8545`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevnetConfig {
    /// Address the JSON-RPC server listens on (HTTP and WebSocket on the same port). Use port 0
    /// to let the system pick a free port; [`crate::DevnetHandle::addr`] tells which.
    pub bind: SocketAddr,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Number of dev accounts derived from [`TEST_MNEMONIC`] (`m/44'/60'/0'/0/i`).
    pub accounts: u32,
    /// Initial balance of each dev account, in wei.
    pub balance: U256,
    /// `None`: automine, one block per transaction as soon as it arrives (hardhat's default).
    /// `Some(t)`: mine a block every `t` with the pending transactions (interval mining).
    #[serde(with = "opt_secs")]
    pub block_time: Option<Duration>,
    /// Directory that persists the chain (an append-only journal of mined blocks, fsync'd
    /// before a transaction is acknowledged). `None`: in memory only.
    pub state_dir: Option<PathBuf>,
    /// Block gas limit.
    pub gas_limit: u64,
    /// Base fee of the first block, in wei.
    pub initial_base_fee: u64,
}

impl Default for DevnetConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8545)),
            chain_id: DEFAULT_CHAIN_ID,
            accounts: 20,
            // 10 000 ether.
            balance: U256::from(10_000u64) * U256::from(1_000_000_000_000_000_000u64),
            block_time: None,
            state_dir: None,
            gas_limit: 60_000_000,
            initial_base_fee: 1_000_000_000,
        }
    }
}

impl DevnetConfig {
    /// The default configuration on `127.0.0.1:0`, in memory: what tests want.
    pub fn ephemeral() -> Self {
        Self { bind: SocketAddr::from(([127, 0, 0, 1], 0)), ..Self::default() }
    }
}

mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let v = Option::<f64>::deserialize(d)?;
        match v {
            None => Ok(None),
            Some(secs) if secs.is_finite() && secs > 0.0 => Ok(Some(Duration::from_secs_f64(secs))),
            Some(secs) => Err(serde::de::Error::custom(format!(
                "block_time must be a positive number of seconds, got {secs}"
            ))),
        }
    }
}
