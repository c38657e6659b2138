#![doc = include_str!("../README.md")]

pub mod bindings;
pub mod deploy;
pub mod errors;
pub mod permit;
pub mod proof;

pub use bindings::{DevToken, IERC20Permit, ImageRegistry, Marketplace};
pub use deploy::{DeployError, DeployOptions, Deployment, deploy_all};
pub use errors::{ContractError, decode_revert};
pub use permit::{PermitError, PermitSignature, permit_digest, sign_permit};
pub use proof::{Proof, result_digest, result_struct_hash, spec_struct_hash};

/// The TaskSpec a task was submitted with; callers pass it back to `claimTask`,
/// `submitResult` and `reclaim`.
pub type TaskSpec = Marketplace::TaskSpec;
/// The published fields of an image; its id is keccak256(abi.encode(manifest)).
pub type ImageManifest = ImageRegistry::ImageManifest;

/// The gas limit to send for a call whose estimate was `estimate`.
///
/// An estimate is exact for the state it ran against. Between the estimate and the
/// transaction another one can change a balance from zero to non-zero (a fresh storage
/// slot costs 20k more than an update), so a call sent with the bare estimate can run out
/// of gas. Unused gas is not charged.
pub const fn gas_with_headroom(estimate: u64) -> u64 {
    estimate.saturating_add(estimate / 4).saturating_add(25_000)
}
