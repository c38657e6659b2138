//! Dev accounts: keys derived from the test mnemonic, unlocked for `eth_sendTransaction`.

use alloy_primitives::Address;
use alloy_signer_local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};

use crate::{DevnetError, config::TEST_MNEMONIC};

/// One unlocked account of the devnet. `Debug` shows the address only.
#[derive(Clone)]
pub struct DevAccount {
    signer: PrivateKeySigner,
}

impl std::fmt::Debug for DevAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevAccount").field("address", &self.address()).finish_non_exhaustive()
    }
}

impl DevAccount {
    /// The account's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The account's signer (holds the private key: handle with care).
    pub fn signer(&self) -> &PrivateKeySigner {
        &self.signer
    }

    /// The private key as 0x-prefixed hex, for tools that take a key string. These keys are
    /// public knowledge (derived from the test mnemonic): never use them on a real chain.
    pub fn private_key_hex(&self) -> String {
        format!("0x{}", alloy_primitives::hex::encode(self.signer.to_bytes()))
    }
}

/// Derives `count` accounts from [`TEST_MNEMONIC`] at `m/44'/60'/0'/0/i`.
pub(crate) fn derive(count: u32) -> Result<Vec<DevAccount>, DevnetError> {
    (0..count)
        .map(|i| {
            MnemonicBuilder::<English>::default()
                .phrase(TEST_MNEMONIC)
                .index(i)
                .and_then(|b| b.build())
                .map(|signer| DevAccount { signer })
                .map_err(|e| DevnetError::Accounts(e.to_string()))
        })
        .collect()
}
