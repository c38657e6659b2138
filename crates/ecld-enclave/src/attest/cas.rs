//! Mutual attestation with the CAS: the enclave proves itself with platform evidence, the CAS
//! proves itself with a signature by the identity the image pins.

use ecld_cas::CasClient;
use ecld_tee::EvidenceProvider;
use ecld_types::Address;

use super::{AttestError, ImageSecrets, Provisioner};

/// Obtains the image secrets from a CAS session by attestation.
#[derive(Debug)]
pub struct CasProvisioner<P> {
    client: CasClient,
    session: String,
    platform: P,
    cas_identity: Address,
}

impl<P: EvidenceProvider> CasProvisioner<P> {
    /// Attests to the CAS at `cas_url` for `session` with evidence from `platform`, accepting
    /// only answers signed by `cas_identity` (the identity pinned in the image).
    pub fn new(
        cas_url: &str,
        session: impl Into<String>,
        platform: P,
        cas_identity: Address,
    ) -> Result<Self, AttestError> {
        let client = CasClient::new(cas_url).map_err(|e| AttestError::Cas(e.to_string()))?;
        Ok(Self { client, session: session.into(), platform, cas_identity })
    }
}

impl<P: EvidenceProvider> Provisioner for CasProvisioner<P> {
    fn platform(&self) -> &str {
        self.platform.platform().as_str()
    }

    async fn provision(&self) -> Result<ImageSecrets, AttestError> {
        let secrets = self
            .client
            .attest(&self.session, &self.platform, self.cas_identity)
            .await
            .map_err(|e| match e {
                ecld_cas::CasError::WrongCasIdentity { expected, actual } => {
                    AttestError::WrongCas { pinned: expected.to_string(), got: actual.to_string() }
                }
                other => AttestError::Cas(other.to_string()),
            })?;
        Ok(ImageSecrets {
            identity: secrets.age_identity().clone(),
            signer: secrets.signer().clone(),
        })
    }
}
