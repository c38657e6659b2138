//! The simulated platform: INSECURE evidence signed by a local key, for development.
//!
//! A sim "quote" is an ECDSA secp256k1 signature by the node's sim platform key over
//! `sha256("ecld-sim-evidence-v1" ‖ measurement ‖ report_data)`. Anyone holding the key can
//! sign anything, so it proves nothing about isolation: a policy must opt in with
//! `danger_allow_sim: true` and list the platform keys it trusts.

use std::{fmt, fs, io::Write, path::Path};

use k256::ecdsa::{Signature, SigningKey, VerifyingKey, signature::hazmat::PrehashVerifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    Evidence, EvidenceProvider, HexBytes, Platform, Policy, ReportData, TeeError, Verified,
};

const DOMAIN: &[u8] = b"ecld-sim-evidence-v1";

/// Evidence from the sim platform (JSON: `{"platform":"sim", …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimEvidence {
    /// sha256 of the enclave's program module.
    pub measurement: HexBytes<32>,
    /// The 64 bytes the evidence binds.
    pub report_data: HexBytes<64>,
    /// The sim platform public key that signed (compressed secp256k1).
    pub platform_key: HexBytes<33>,
    /// ECDSA signature `r ‖ s` (64 bytes).
    pub signature: HexBytes<64>,
}

fn digest(measurement: &[u8; 32], report_data: &[u8; 64]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(measurement);
    h.update(report_data);
    h.finalize().into()
}

/// A sim platform's signing key. `Debug` shows only the public key.
#[derive(Clone)]
pub struct SimPlatformKey(SigningKey);

impl fmt::Debug for SimPlatformKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimPlatformKey(public {}, secret redacted)", self.public_hex())
    }
}

impl SimPlatformKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(SigningKey::random(&mut rand::rngs::OsRng))
    }

    /// The public key, compressed SEC1 (33 bytes): what a policy lists.
    pub fn public_key(&self) -> [u8; 33] {
        let point = self.0.verifying_key().to_encoded_point(true);
        let mut out = [0u8; 33];
        out.copy_from_slice(point.as_bytes());
        out
    }

    /// The public key as hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.public_key())
    }

    /// Loads a key file (hex of the 32-byte secret), creating it (mode 0600) if absent.
    pub fn load_or_generate(path: &Path) -> Result<Self, TeeError> {
        if path.exists() {
            return Self::load(path);
        }
        let key = Self::generate();
        let err =
            |e: std::io::Error| TeeError::KeyFile { path: path.to_owned(), reason: e.to_string() };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(err)?;
        }
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(path).map_err(err)?;
        file.write_all(hex::encode(key.0.to_bytes()).as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)?;
        Ok(key)
    }

    /// Loads a key file (hex of the 32-byte secret).
    pub fn load(path: &Path) -> Result<Self, TeeError> {
        let text = fs::read_to_string(path)
            .map_err(|e| TeeError::KeyFile { path: path.to_owned(), reason: e.to_string() })?;
        let bytes: HexBytes<32> = text.parse().map_err(|_| TeeError::KeyFile {
            path: path.to_owned(),
            reason: "expected 64 hex digits (a secp256k1 secret key)".into(),
        })?;
        SigningKey::from_bytes(&bytes.0.into()).map(Self).map_err(|_| TeeError::KeyFile {
            path: path.to_owned(),
            reason: "not a valid secp256k1 secret key".into(),
        })
    }
}

/// The sim platform: measures a module by sha256 and signs evidence with its key.
#[derive(Debug, Clone)]
pub struct SimPlatform {
    key: SimPlatformKey,
    measurement: [u8; 32],
}

impl SimPlatform {
    /// A sim platform running `module` (the measurement is sha256 of its bytes).
    pub fn new(key: SimPlatformKey, module: &[u8]) -> Self {
        Self { key, measurement: measure(module) }
    }

    /// The measurement this platform reports.
    pub const fn measurement(&self) -> [u8; 32] {
        self.measurement
    }

    /// The platform key.
    pub const fn key(&self) -> &SimPlatformKey {
        &self.key
    }
}

/// The sim measurement of a program module: sha256 of its bytes.
pub fn measure(module: &[u8]) -> [u8; 32] {
    Sha256::digest(module).into()
}

impl EvidenceProvider for SimPlatform {
    fn platform(&self) -> Platform {
        Platform::Sim
    }

    fn evidence(&self, report_data: &ReportData) -> Result<Evidence, TeeError> {
        let prehash = digest(&self.measurement, &report_data.0);
        let signature: Signature =
            k256::ecdsa::signature::hazmat::PrehashSigner::sign_prehash(&self.key.0, &prehash)
                .map_err(|e| TeeError::Malformed {
                    what: "sim signature",
                    reason: e.to_string(),
                })?;
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&signature.to_bytes());
        Ok(Evidence::Sim(SimEvidence {
            measurement: HexBytes(self.measurement),
            report_data: HexBytes(report_data.0),
            platform_key: HexBytes(self.key.public_key()),
            signature: HexBytes(sig),
        }))
    }
}

pub(crate) fn verify(
    ev: &SimEvidence,
    policy: &Policy,
    expected: &ReportData,
) -> Result<Verified, TeeError> {
    if !policy.danger_allow_sim {
        return Err(TeeError::SimNotAllowed);
    }
    let Some(sim) = &policy.sim else {
        return Err(TeeError::PlatformNotAllowed {
            platform: Platform::Sim,
            allowed: policy.allowed_list(),
        });
    };
    let bad = || TeeError::BadSignature { platform: Platform::Sim };
    let key = VerifyingKey::from_sec1_bytes(ev.platform_key.as_bytes()).map_err(|_| bad())?;
    let signature = Signature::from_slice(ev.signature.as_bytes()).map_err(|_| bad())?;
    key.verify_prehash(&digest(&ev.measurement.0, &ev.report_data.0), &signature)
        .map_err(|_| bad())?;
    if !sim.platform_keys.contains(&ev.platform_key) {
        return Err(TeeError::UntrustedSimKey { key: ev.platform_key.to_string() });
    }
    if ev.measurement != sim.measurement {
        return Err(TeeError::MeasurementMismatch {
            platform: Platform::Sim,
            field: "measurement",
            expected: sim.measurement.to_string(),
            actual: ev.measurement.to_string(),
        });
    }
    if ev.report_data.0 != expected.0 {
        return Err(TeeError::ReportDataMismatch {
            platform: Platform::Sim,
            expected: hex::encode(expected.0),
            actual: ev.report_data.to_string(),
        });
    }
    Ok(Verified {
        platform: Platform::Sim,
        measurement: ev.measurement.to_string(),
        tcb_status: None,
        advisory_ids: Vec::new(),
    })
}
