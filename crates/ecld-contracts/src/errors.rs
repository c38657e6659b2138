//! Decoding the contracts' custom errors out of failed calls.

use alloy::sol_types::SolInterface;

use crate::bindings::{DevToken, ImageRegistry, Marketplace};

/// A custom error of one of the ecld contracts, decoded from revert data.
#[derive(Debug, PartialEq, Eq)]
pub enum ContractError {
    /// A Marketplace refusal.
    Marketplace(Marketplace::MarketplaceErrors),
    /// An ImageRegistry refusal.
    Registry(ImageRegistry::ImageRegistryErrors),
    /// A DevToken refusal (bubbled up through the Marketplace's token calls).
    Token(DevToken::DevTokenErrors),
}

/// Decodes a failed call's revert data into the contract's custom error; `None` when the
/// error carries no revert data (transport failure) or the data is not one of ours.
pub fn decode_revert(err: &alloy::contract::Error) -> Option<ContractError> {
    let data = err.as_revert_data()?;
    decode_revert_data(&data)
}

/// Decodes raw revert data (selector + ABI-encoded fields).
pub fn decode_revert_data(data: &[u8]) -> Option<ContractError> {
    if let Ok(e) = Marketplace::MarketplaceErrors::abi_decode(data) {
        return Some(ContractError::Marketplace(e));
    }
    if let Ok(e) = ImageRegistry::ImageRegistryErrors::abi_decode(data) {
        return Some(ContractError::Registry(e));
    }
    DevToken::DevTokenErrors::abi_decode(data).ok().map(ContractError::Token)
}
