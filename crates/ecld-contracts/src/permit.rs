//! EIP-2612 permits, so a requester escrows and submits in one transaction
//! (`submitTaskWithPermit`).

use alloy::{
    network::Ethereum,
    primitives::{Address, B256, U256},
    providers::Provider,
    signers::Signer,
    sol_types::{Eip712Domain, SolStruct},
};

use crate::bindings::IERC20Permit;

mod types {
    #![allow(missing_docs, unreachable_pub)]
    alloy::sol! {
        /// EIP-2612's Permit message.
        #[derive(Debug)]
        struct Permit {
            address owner;
            address spender;
            uint256 value;
            uint256 nonce;
            uint256 deadline;
        }
    }
}
pub use types::Permit;

/// A signed permit, split the way `permit(…, v, r, s)` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermitSignature {
    /// Allowance granted.
    pub value: U256,
    /// Unix time after which the permit is void.
    pub deadline: U256,
    /// 27 or 28.
    pub v: u8,
    /// Signature r.
    pub r: B256,
    /// Signature s.
    pub s: B256,
}

/// Why a permit could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum PermitError {
    /// Reading the token's name or the owner's nonce failed.
    #[error(
        "reading {what} from token {token} failed: {source}; check the token address implements EIP-2612"
    )]
    Read {
        /// What was read.
        what: &'static str,
        /// The token.
        token: Address,
        /// The call error.
        #[source]
        source: alloy::contract::Error,
    },
    /// The chain id could not be read.
    #[error("reading the chain id failed: {0}; check the RPC endpoint")]
    ChainId(#[source] alloy::transports::TransportError),
    /// The signer refused.
    #[error("signing the permit failed: {0}")]
    Sign(#[source] alloy::signers::Error),
}

/// The EIP-712 digest of a permit for a token whose domain is
/// `{name, version: "1", chainId, verifyingContract: token}` (DevToken's, and most
/// EIP-2612 tokens').
pub fn permit_digest(token_name: &str, chain_id: u64, token: Address, permit: &Permit) -> B256 {
    let domain = Eip712Domain::new(
        Some(token_name.to_owned().into()),
        Some("1".into()),
        Some(U256::from(chain_id)),
        Some(token),
        None,
    );
    permit.eip712_signing_hash(&domain)
}

/// Signs a permit letting `spender` take `value` of `signer`'s tokens until `deadline`,
/// reading the token's name and the signer's current nonce from the chain.
pub async fn sign_permit<P, S>(
    provider: &P,
    signer: &S,
    token: Address,
    spender: Address,
    value: U256,
    deadline: U256,
) -> Result<PermitSignature, PermitError>
where
    P: Provider<Ethereum>,
    S: Signer + Sync,
{
    let erc20 = IERC20Permit::new(token, provider);
    let name = erc20.name().call().await.map_err(|source| PermitError::Read {
        what: "name()",
        token,
        source,
    })?;
    let owner = signer.address();
    let nonce = erc20.nonces(owner).call().await.map_err(|source| PermitError::Read {
        what: "nonces(owner)",
        token,
        source,
    })?;
    let chain_id = provider.get_chain_id().await.map_err(PermitError::ChainId)?;
    let permit = Permit { owner, spender, value, nonce, deadline };
    let digest = permit_digest(&name, chain_id, token, &permit);
    let sig = signer.sign_hash(&digest).await.map_err(PermitError::Sign)?;
    Ok(PermitSignature {
        value,
        deadline,
        v: 27 + u8::from(sig.v()),
        r: sig.r().into(),
        s: sig.s().into(),
    })
}
