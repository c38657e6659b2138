//! The image secrets an attested enclave receives.

use std::fmt;

use alloy_primitives::Address;
use ecld_crypto::{AgeIdentity, AgeRecipient, SignerKey};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::{CasError, api::SecretsBundle};

/// An image's secrets: the X25519 identity inputs are encrypted to, and the proof signer.
/// `Debug` shows only the public halves.
#[derive(Clone)]
pub struct ImageSecrets {
    session: String,
    age_identity: AgeIdentity,
    signer: SignerKey,
}

impl fmt::Debug for ImageSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageSecrets")
            .field("session", &self.session)
            .field("recipient", &self.recipient().to_string())
            .field("signer", &self.signer.address())
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl ImageSecrets {
    pub(crate) fn generate(session: &str) -> Self {
        Self {
            session: session.to_owned(),
            age_identity: AgeIdentity::generate(),
            signer: SignerKey::generate(),
        }
    }

    /// The session these secrets belong to.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The X25519 identity that decrypts task inputs.
    pub const fn age_identity(&self) -> &AgeIdentity {
        &self.age_identity
    }

    /// The public half of [`Self::age_identity`] (`age1…`).
    pub fn recipient(&self) -> AgeRecipient {
        self.age_identity.recipient()
    }

    /// The proof signer.
    pub const fn signer(&self) -> &SignerKey {
        &self.signer
    }

    /// The proof signer's address.
    pub fn signer_address(&self) -> Address {
        self.signer.address()
    }

    /// The X25519 identity and the signer, by value.
    pub fn into_parts(self) -> (AgeIdentity, SignerKey) {
        (self.age_identity, self.signer)
    }

    pub(crate) fn to_bundle_json(&self) -> Result<Zeroizing<Vec<u8>>, CasError> {
        let age = self.age_identity.to_secret_string();
        let key = self.signer.to_hex_secret();
        let bundle = SecretsBundle {
            version: 1,
            session: self.session.clone(),
            age_identity: age.expose_secret().to_owned(),
            signer_key: key.expose_secret().to_owned(),
        };
        let out = serde_json::to_vec(&bundle).map(Zeroizing::new);
        let SecretsBundle { age_identity, signer_key, .. } = bundle;
        drop((Zeroizing::new(age_identity), Zeroizing::new(signer_key)));
        out.map_err(|e| CasError::Internal(e.to_string()))
    }

    pub(crate) fn from_bundle_json(bytes: &[u8]) -> Result<Self, String> {
        let bundle: SecretsBundle = serde_json::from_slice(bytes)
            .map_err(|e| format!("secrets bundle is not valid JSON: {e}"))?;
        let SecretsBundle { version, session, age_identity, signer_key } = bundle;
        let (age_identity, signer_key) = (Zeroizing::new(age_identity), Zeroizing::new(signer_key));
        if version != 1 {
            return Err(format!("secrets bundle version {version} is not supported (expected 1)"));
        }
        let age_identity = AgeIdentity::from_secret_str(&age_identity)
            .map_err(|e| format!("secrets bundle age identity: {e}"))?;
        let signer = SignerKey::from_hex(&signer_key)
            .map_err(|e| format!("secrets bundle signer key: {e}"))?;
        Ok(Self { session, age_identity, signer })
    }
}
