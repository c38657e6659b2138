//! Mutual attestation with the CAS: the enclave proves itself with platform evidence, the CAS
//! proves itself with a signature by the identity the image pins.

use std::time::{Duration, Instant};

use ecld_cas::{CasClient, CasError};
use ecld_tee::EvidenceProvider;
use ecld_types::Address;

use super::{AttestError, ImageSecrets, Provisioner};

/// How long an enclave keeps trying a CAS it cannot reach (restarting, say) before it gives
/// up: a CAS down for a moment must not cost the node its enclave and the task its node. Well
/// inside the node's enclave start-up timeout (120 s).
pub(crate) const CAS_UNREACHABLE_BUDGET: Duration = Duration::from_secs(30);

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
        let start = Instant::now();
        let mut delay = Duration::from_millis(100);
        let secrets = loop {
            match self.client.attest(&self.session, &self.platform, self.cas_identity).await {
                Ok(s) => break s,
                // Only a CAS that could not be reached is tried again (nothing was granted;
                // the next attempt takes a fresh nonce); every answer of the CAS is final.
                Err(e @ CasError::Transport { .. })
                    if start.elapsed() + delay < CAS_UNREACHABLE_BUDGET =>
                {
                    tracing::warn!(target: "ecld_enclave", %e, "CAS unreachable; trying again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(CasError::WrongCasIdentity { expected, actual }) => {
                    return Err(AttestError::WrongCas {
                        pinned: expected.to_string(),
                        got: actual.to_string(),
                    });
                }
                Err(other) => return Err(AttestError::Cas(other.to_string())),
            }
        };
        Ok(ImageSecrets {
            identity: secrets.age_identity().clone(),
            signer: secrets.signer().clone(),
        })
    }
}
