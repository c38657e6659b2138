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
pub use proof::{Proof, result_digest, result_struct_hash};

/// The TaskSpec a task was submitted with; callers pass it back to `claimTask`,
/// `submitResult` and `reclaim`.
pub type TaskSpec = Marketplace::TaskSpec;
/// The published fields of an image; its id is keccak256(abi.encode(manifest)).
pub type ImageManifest = ImageRegistry::ImageManifest;
