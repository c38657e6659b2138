//! How an enclave obtains the image secrets: attestation to the CAS, behind a small trait.
//!
//! [`Provisioner`] is the seam: the enclave binary picks the CAS (mutual attestation) in
//! production and [`DangerLocalSecrets`] (a key file, no attestation, INSECURE) for
//! development and benchmarks.

mod cas;

use std::{fmt, future::Future, path::Path};

use ecld_crypto::{AgeIdentity, SignerKey};
use serde::Deserialize;
use zeroize::Zeroizing;

pub use cas::CasProvisioner;

/// The image secrets, held in memory only. Both keys are zeroized on drop by their types
/// (age's X25519 `StaticSecret`, k256's `SigningKey`); `Debug` shows only the public halves.
pub struct ImageSecrets {
    /// Decrypts task inputs (its recipient is the ImageRegistry's `enclaveKey`).
    pub identity: AgeIdentity,
    /// Signs proofs (its address is the ImageRegistry's `enclaveSigner`).
    pub signer: SignerKey,
}

impl fmt::Debug for ImageSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageSecrets")
            .field("recipient", &self.identity.recipient().to_string())
            .field("signer", &self.signer.address())
            .finish_non_exhaustive()
    }
}

/// Why the enclave could not obtain its secrets.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The CAS could not be reached or answered with an error.
    #[error("CAS request failed: {0}; check --cas and that the CAS is running")]
    Cas(String),
    /// The CAS's answer is not signed by the CAS identity pinned in the image.
    #[error(
        "the CAS answer is signed by {got}, not by the pinned CAS identity {pinned}; refusing its secrets"
    )]
    WrongCas {
        /// The pinned CAS identity.
        pinned: String,
        /// Who signed.
        got: String,
    },
    /// The platform could not produce evidence.
    #[error("cannot produce TEE evidence: {0}")]
    Evidence(String),
    /// The secrets the CAS returned could not be opened or parsed.
    #[error("the provisioned secrets are unusable: {0}")]
    Secrets(String),
    /// A local secrets file could not be read.
    #[error("cannot read the secrets file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

/// Something that hands the enclave its image secrets.
pub trait Provisioner {
    /// The platform name the enclave announces in `Ready` (`sim`, `tdx`, `sgx`; `none` when
    /// nothing was attested).
    fn platform(&self) -> &str;

    /// Obtains the secrets (for the CAS: attest, check the CAS signature, open the sealed
    /// secrets).
    fn provision(&self) -> impl Future<Output = Result<ImageSecrets, AttestError>> + Send;
}

/// INSECURE: secrets read from a local JSON file, without any attestation. For development
/// and benchmarks only; the enclave announces platform `none`.
///
/// File format: `{"age_identity": "AGE-SECRET-KEY-1…", "signer_key": "0x…64 hex"}`.
#[derive(Debug)]
pub struct DangerLocalSecrets {
    path: std::path::PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    age_identity: String,
    signer_key: String,
}

impl DangerLocalSecrets {
    /// Secrets from the file at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self { path: path.as_ref().to_owned() }
    }

    /// Writes `secrets` in the file format [`DangerLocalSecrets`] reads.
    pub fn file_contents(secrets: &ImageSecrets) -> Zeroizing<String> {
        use secrecy::ExposeSecret as _;
        Zeroizing::new(
            serde_json::json!({
                "age_identity": secrets.identity.to_secret_string().expose_secret(),
                "signer_key": secrets.signer.to_hex_secret().expose_secret(),
            })
            .to_string(),
        )
    }

    /// Reads the file now.
    pub fn load(&self) -> Result<ImageSecrets, AttestError> {
        let err =
            |reason: String| AttestError::File { path: self.path.display().to_string(), reason };
        let text =
            Zeroizing::new(std::fs::read_to_string(&self.path).map_err(|e| err(e.to_string()))?);
        let file: SecretsFile = serde_json::from_str(&text)
            .map_err(|_| err("expected JSON {\"age_identity\": …, \"signer_key\": …}".into()))?;
        let (age_identity, signer_key) =
            (Zeroizing::new(file.age_identity), Zeroizing::new(file.signer_key));
        let identity =
            AgeIdentity::from_secret_str(&age_identity).map_err(|e| err(e.to_string()))?;
        let signer = SignerKey::from_hex(&signer_key).map_err(|e| err(e.to_string()))?;
        Ok(ImageSecrets { identity, signer })
    }
}

impl Provisioner for DangerLocalSecrets {
    fn platform(&self) -> &str {
        "none"
    }

    fn provision(&self) -> impl Future<Output = Result<ImageSecrets, AttestError>> + Send {
        let result = self.load();
        async move { result }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_secrets_round_trip_and_debug_redacts() {
        let secrets =
            ImageSecrets { identity: AgeIdentity::generate(), signer: SignerKey::generate() };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        std::fs::write(&path, DangerLocalSecrets::file_contents(&secrets).as_bytes()).unwrap();
        let loaded = DangerLocalSecrets::new(&path).load().unwrap();
        assert_eq!(loaded.signer.address(), secrets.signer.address());
        assert_eq!(loaded.identity.recipient(), secrets.identity.recipient());
        let debug = format!("{loaded:?}");
        use secrecy::ExposeSecret as _;
        assert!(!debug.contains(loaded.identity.to_secret_string().expose_secret()), "{debug}");
        assert!(!debug.contains(&loaded.signer.to_hex_secret().expose_secret()[2..]), "{debug}");
    }

    #[test]
    fn malformed_secrets_file_names_the_file_not_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        std::fs::write(&path, r#"{"age_identity": "AGE-SECRET-KEY-1NOPE", "signer_key": "0x12"}"#)
            .unwrap();
        let err = DangerLocalSecrets::new(&path).load().unwrap_err().to_string();
        assert!(err.contains("secrets.json"), "{err}");
        assert!(!err.contains("NOPE"), "{err}");
    }
}
