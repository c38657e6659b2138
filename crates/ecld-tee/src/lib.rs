#![doc = include_str!("../README.md")]

pub mod dcap;
mod error;
mod hexbytes;
mod policy;
pub mod sim;
pub mod tsm;

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use dcap::{DcapEvidence, DcapPlatform, QuoteSummary, inspect_quote};
pub use dcap_qvl::QuoteCollateralV3;
pub use error::TeeError;
pub use hexbytes::{HexBytes, HexError, hex_vec};
pub use policy::{KNOWN_TCB_STATUSES, Policy, SgxPolicy, SimPolicy, TdxPolicy};
pub use sim::{SimEvidence, SimPlatform, SimPlatformKey};
pub use tsm::ConfigfsTsm;

/// A TEE platform kind. Displays as `sim`, `tdx` or `sgx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Simulated, INSECURE: evidence signed by a local key. Development only.
    Sim,
    /// Intel TDX (DCAP quote).
    Tdx,
    /// Intel SGX (DCAP quote).
    Sgx,
}

impl Platform {
    /// Whether evidence from this platform proves nothing (true for `sim`).
    pub const fn is_insecure(self) -> bool {
        matches!(self, Self::Sim)
    }

    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Tdx => "tdx",
            Self::Sgx => "sgx",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = TeeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sim" => Ok(Self::Sim),
            "tdx" => Ok(Self::Tdx),
            "sgx" => Ok(Self::Sgx),
            other => Err(TeeError::Malformed {
                what: "platform name",
                reason: format!("`{other}` is not one of sim, tdx, sgx"),
            }),
        }
    }
}

/// The 64 bytes a piece of evidence binds (the TEE's "report data").
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportData(pub [u8; 64]);

impl fmt::Debug for ReportData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReportData({})", hex::encode(self.0))
    }
}

impl ReportData {
    /// The report data of an ecld attestation: `sha256("ecld-attest-v1" ‖ session ‖ nonce ‖
    /// ephemeral_recipient)` in bytes 0..32, zero in 32..64. `nonce` is the hex text the CAS
    /// issued and `ephemeral_recipient` the `age1…` string, both as UTF-8 bytes.
    pub fn for_attestation(session: &str, nonce: &str, ephemeral_recipient: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"ecld-attest-v1");
        h.update(session.as_bytes());
        h.update(nonce.as_bytes());
        h.update(ephemeral_recipient.as_bytes());
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&h.finalize());
        Self(out)
    }
}

/// Evidence from a TEE platform, tagged by platform (`{"platform":"sim"|"tdx"|"sgx", …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "lowercase")]
pub enum Evidence {
    /// Simulated, INSECURE.
    Sim(SimEvidence),
    /// An Intel TDX DCAP quote and its collateral.
    Tdx(DcapEvidence),
    /// An Intel SGX DCAP quote and its collateral.
    Sgx(DcapEvidence),
}

impl Evidence {
    /// The platform the evidence claims to come from.
    pub const fn platform(&self) -> Platform {
        match self {
            Self::Sim(_) => Platform::Sim,
            Self::Tdx(_) => Platform::Tdx,
            Self::Sgx(_) => Platform::Sgx,
        }
    }

    /// Verifies the evidence against `policy` and checks it binds `expected` report data.
    /// `now_secs` (Unix time) decides whether DCAP collateral is still valid.
    ///
    /// Checks, in order: platform allowed; signature/quote valid; TCB status (DCAP);
    /// measurement; report data. The first failure is returned.
    pub fn verify(
        &self,
        policy: &Policy,
        expected: &ReportData,
        now_secs: u64,
    ) -> Result<Verified, TeeError> {
        match self {
            Self::Sim(ev) => sim::verify(ev, policy, expected),
            Self::Tdx(ev) => dcap::verify(Platform::Tdx, ev, policy, expected, now_secs),
            Self::Sgx(ev) => dcap::verify(Platform::Sgx, ev, policy, expected, now_secs),
        }
    }
}

/// Something that produces evidence binding given report data: a platform.
pub trait EvidenceProvider: Send + Sync {
    /// Which platform this is.
    fn platform(&self) -> Platform;
    /// Evidence binding `report_data`.
    fn evidence(&self, report_data: &ReportData) -> Result<Evidence, TeeError>;
}

/// What verification established. `Display` always names the platform and says when it is
/// the insecure `sim`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    /// The platform the evidence came from.
    pub platform: Platform,
    /// The main measurement, hex: sim module sha256, TDX MRTD or SGX MRENCLAVE.
    pub measurement: String,
    /// DCAP TCB status (none for sim).
    pub tcb_status: Option<String>,
    /// Intel security advisories that apply to this platform's TCB.
    pub advisory_ids: Vec<String>,
}

impl Verified {
    /// Whether the evidence came from the insecure `sim` platform.
    pub const fn is_insecure(&self) -> bool {
        self.platform.is_insecure()
    }
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "platform {}", self.platform)?;
        if self.is_insecure() {
            f.write_str(" (INSECURE simulation: no hardware protection)")?;
        }
        write!(f, ", measurement {}", self.measurement)?;
        if let Some(status) = &self.tcb_status {
            write!(f, ", TCB {status}")?;
        }
        if !self.advisory_ids.is_empty() {
            write!(f, ", advisories {}", self.advisory_ids.join(" "))?;
        }
        Ok(())
    }
}
