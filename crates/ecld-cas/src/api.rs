//! The CAS wire protocol: JSON bodies of the HTTP API and the digests both sides compute.
//!
//! See `docs/architecture.md` (TEE section) for the endpoints.

use alloy_primitives::{Address, B256};
use ecld_tee::{Evidence, Platform, Policy};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `POST /v1/sessions` body (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// Session name, e.g. `stats@1`: 1–128 of `A-Z a-z 0-9 . _ - @ : +`.
    pub name: String,
    /// What evidence the session accepts.
    pub policy: Policy,
}

/// A session's public halves and policy (`POST /v1/sessions`, `GET /v1/sessions/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Session name.
    pub name: String,
    /// What evidence the session accepts.
    pub policy: Policy,
    /// The image's X25519 recipient (`age1…`): inputs are encrypted to it.
    pub enclave_recipient: String,
    /// The image's proof signer address.
    pub enclave_signer: Address,
    /// The CAS identity address that signs attestation answers (pin it in the image manifest).
    pub cas_identity: Address,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// The platforms the policy allows (`sim` shown when allowed: it is insecure).
    pub platforms: Vec<Platform>,
}

/// `POST /v1/nonce` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonceRequest {
    /// The session the nonce is for.
    pub session: String,
}

/// `POST /v1/nonce` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceResponse {
    /// 32 random bytes as 64 lowercase hex digits; single use.
    pub nonce: String,
    /// The session it is bound to.
    pub session: String,
    /// Unix seconds after which the CAS refuses it.
    pub expires_at: u64,
}

/// `POST /v1/attest` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    /// Session name.
    pub session: String,
    /// A nonce from `POST /v1/nonce` for this session.
    pub nonce: String,
    /// The enclave's ephemeral X25519 recipient (`age1…`); the secrets are encrypted to it.
    pub ephemeral_recipient: String,
    /// Evidence whose report data is [`ecld_tee::ReportData::for_attestation`] of the three
    /// fields above.
    pub evidence: Evidence,
}

/// `POST /v1/attest` answer: the image secrets sealed to the ephemeral key, signed by the CAS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestResponse {
    /// Echo of the request.
    pub session: String,
    /// Echo of the request.
    pub nonce: String,
    /// Echo of the request.
    pub ephemeral_recipient: String,
    /// Platform the evidence verified as (`sim` is insecure).
    pub platform: Platform,
    /// The verified measurement (hex).
    pub measurement: String,
    /// age v1 ciphertext (binary, hex-encoded) of the [`SecretsBundle`] JSON, to
    /// `ephemeral_recipient`.
    #[serde(with = "ecld_tee::hex_vec")]
    pub sealed_secrets: Vec<u8>,
    /// The CAS identity address.
    pub cas_identity: Address,
    /// 65-byte secp256k1 signature `r ‖ s ‖ v` (v ∈ {27, 28}) by the CAS identity over
    /// [`response_digest`], hex.
    #[serde(with = "ecld_tee::hex_vec")]
    pub signature: Vec<u8>,
}

/// Error body of every refusal: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable snake_case code (`measurement_mismatch`, `nonce_replayed`, …).
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
}

/// The plaintext inside [`AttestResponse::sealed_secrets`].
#[derive(Serialize, Deserialize)]
pub(crate) struct SecretsBundle {
    pub(crate) version: u32,
    pub(crate) session: String,
    /// `AGE-SECRET-KEY-1…`
    pub(crate) age_identity: String,
    /// `0x` + 64 hex digits.
    pub(crate) signer_key: String,
}

/// What the CAS identity signs in an attestation answer:
/// `sha256("ecld-cas-attest-response-v1" ‖ lp(session) ‖ lp(nonce) ‖ lp(ephemeral_recipient) ‖
/// sha256(sealed_secrets))`, where `lp(x)` is the 4-byte big-endian length of `x` then `x`.
pub fn response_digest(
    session: &str,
    nonce: &str,
    ephemeral_recipient: &str,
    sealed_secrets: &[u8],
) -> B256 {
    let mut h = Sha256::new();
    h.update(b"ecld-cas-attest-response-v1");
    for part in [session, nonce, ephemeral_recipient] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(Sha256::digest(sealed_secrets));
    B256::from(<[u8; 32]>::from(h.finalize()))
}

/// Whether `name` is a valid session name.
pub fn valid_session_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@:+".contains(&b))
}
