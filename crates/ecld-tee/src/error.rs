//! Why evidence could not be produced or was refused.

use std::path::PathBuf;

use crate::Platform;

/// Errors of evidence generation and verification. [`TeeError::code`] gives a stable
/// machine-readable code for each kind (the CAS puts it in its JSON refusals).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TeeError {
    /// Simulated evidence under a policy that does not opt in to it.
    #[error(
        "evidence is from the INSECURE `sim` platform but the policy does not set \
         `danger_allow_sim: true`; use a real TEE (tdx, sgx) or opt in for development only"
    )]
    SimNotAllowed,
    /// The policy has no section for this platform.
    #[error(
        "evidence is from platform `{platform}`, which the policy does not allow (allowed: {allowed})"
    )]
    PlatformNotAllowed {
        /// The evidence's platform.
        platform: Platform,
        /// The platforms the policy allows, comma separated.
        allowed: String,
    },
    /// The sim evidence was signed by a platform key the policy does not list.
    #[error(
        "sim evidence is signed by platform key {key}, which the policy's `sim.platform_keys` \
         does not list; add the node's sim platform public key to the policy"
    )]
    UntrustedSimKey {
        /// The key that signed (compressed SEC1 hex).
        key: String,
    },
    /// A signature over the evidence does not verify: it was altered or forged.
    #[error("{platform} evidence signature does not verify: the evidence was altered or forged")]
    BadSignature {
        /// The evidence's platform.
        platform: Platform,
    },
    /// A DCAP quote failed cryptographic verification against its collateral.
    #[error("{platform} quote does not verify against its collateral: {reason}")]
    QuoteInvalid {
        /// The evidence's platform.
        platform: Platform,
        /// What dcap-qvl reported.
        reason: String,
    },
    /// The quote's TEE type does not match the platform the evidence claims.
    #[error("evidence says platform `{claimed}` but the quote is a {actual} quote")]
    PlatformMismatch {
        /// Platform named in the evidence.
        claimed: Platform,
        /// Platform of the quote itself.
        actual: Platform,
    },
    /// DCAP evidence without collateral.
    #[error(
        "{platform} evidence carries no collateral; fetch it from a PCCS for this quote and \
         attach it (field `collateral`)"
    )]
    CollateralMissing {
        /// The evidence's platform.
        platform: Platform,
    },
    /// The platform's TCB status is not one the policy accepts.
    #[error(
        "{platform} TCB status is {status}; the policy accepts only {allowed} (field `tcb_statuses`)"
    )]
    TcbStatusRefused {
        /// The evidence's platform.
        platform: Platform,
        /// The status the quote verified with.
        status: String,
        /// The accepted statuses, comma separated.
        allowed: String,
    },
    /// A measurement differs from the policy's.
    #[error("{platform} measurement `{field}` is {actual}, the policy expects {expected}")]
    MeasurementMismatch {
        /// The evidence's platform.
        platform: Platform,
        /// Which measurement register.
        field: &'static str,
        /// Expected value (hex).
        expected: String,
        /// Value in the evidence (hex).
        actual: String,
    },
    /// The evidence does not bind the expected report data (stale, replayed or for another key).
    #[error(
        "{platform} evidence binds report data {actual}, expected {expected}: the evidence was \
         made for another nonce, session or key"
    )]
    ReportDataMismatch {
        /// The evidence's platform.
        platform: Platform,
        /// Expected report data (hex).
        expected: String,
        /// Report data in the evidence (hex).
        actual: String,
    },
    /// The evidence or the policy is malformed.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was malformed.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The policy cannot be used.
    #[error("invalid policy: {0}")]
    PolicyInvalid(String),
    /// Linux configfs-tsm is not available on this machine.
    #[error(
        "cannot produce {platform} evidence: Linux configfs-tsm is not available at {} \
         (needs a TDX/SEV guest kernel ≥ 6.7 with configfs mounted); use `--platform sim` for \
         development", path.display()
    )]
    TsmUnavailable {
        /// Platform asked for.
        platform: Platform,
        /// The report directory looked for.
        path: PathBuf,
    },
    /// configfs-tsm exists but producing the report failed.
    #[error("configfs-tsm report at {} failed: {source}", path.display())]
    Tsm {
        /// The report entry.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing a key file failed.
    #[error("sim platform key file {}: {reason}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl TeeError {
    /// A stable snake_case code for this kind of error.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::SimNotAllowed => "sim_not_allowed",
            Self::PlatformNotAllowed { .. } => "platform_not_allowed",
            Self::UntrustedSimKey { .. } => "untrusted_sim_key",
            Self::BadSignature { .. } => "evidence_signature_invalid",
            Self::QuoteInvalid { .. } => "quote_invalid",
            Self::PlatformMismatch { .. } => "platform_mismatch",
            Self::CollateralMissing { .. } => "collateral_missing",
            Self::TcbStatusRefused { .. } => "tcb_status_refused",
            Self::MeasurementMismatch { .. } => "measurement_mismatch",
            Self::ReportDataMismatch { .. } => "report_data_mismatch",
            Self::Malformed { .. } => "evidence_malformed",
            Self::PolicyInvalid(_) => "policy_invalid",
            Self::TsmUnavailable { .. } => "tsm_unavailable",
            Self::Tsm { .. } => "tsm_failed",
            Self::KeyFile { .. } => "key_file",
        }
    }
}
