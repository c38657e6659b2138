//! Publishing an image: module to the store, a CAS session holding its keys, a manifest in
//! the ImageRegistry.

use ecld_contracts::ImageManifest;
use ecld_tee::{HexBytes, Policy, SimPolicy};
use ecld_types::{B256, ImageId};
use serde::{Deserialize, Serialize};

use super::{Client, Image};
use crate::Error;

/// What to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// Name users pick the image by.
    pub name: String,
    /// Version string.
    pub version: String,
    /// The WebAssembly module.
    pub module: Vec<u8>,
    /// What evidence the CAS accepts before releasing the image's keys (see
    /// [`PublishRequest::sim_policy`] for development).
    pub policy: Policy,
    /// CAS URL (default: the client configuration's).
    pub cas: Option<String>,
    /// CAS admin token (default: the client configuration's token file).
    pub cas_token: Option<String>,
}

impl PublishRequest {
    /// A policy for the simulated TEE (INSECURE; development only): the module's sha256 and
    /// the sim platform keys (hex, compressed secp256k1) of the nodes allowed to run it.
    ///
    /// # Errors
    /// [`Error::Protocol`] for a key that is not 33 bytes of hex.
    pub fn sim_policy(module: &[u8], platform_keys: &[String]) -> Result<Policy, Error> {
        let keys = platform_keys
            .iter()
            .map(|k| {
                k.parse::<HexBytes<33>>()
                    .map_err(|e| Error::Protocol(format!("sim platform key {k}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            danger_allow_sim: true,
            sim: Some(SimPolicy {
                measurement: HexBytes(ecld_tee::sim::measure(module)),
                platform_keys: keys,
            }),
            ..Policy::default()
        })
    }
}

/// The ImageRegistry's platform bits a policy allows.
fn platform_bits(policy: &Policy) -> u8 {
    let mut bits = 0;
    if policy.danger_allow_sim && policy.sim.is_some() {
        bits |= 1;
    }
    if policy.sgx.is_some() {
        bits |= 2;
    }
    if policy.tdx.is_some() {
        bits |= 4;
    }
    bits
}

#[derive(Serialize)]
struct CreateSession<'a> {
    name: &'a str,
    policy: &'a Policy,
}

#[derive(Deserialize)]
struct SessionInfo {
    enclave_recipient: String,
    enclave_signer: ecld_types::Address,
    cas_identity: ecld_types::Address,
}

impl Client {
    /// Uploads the module, creates (or finds) the image's CAS session — the CAS generates
    /// the enclave keys and releases them only to enclaves whose evidence meets the policy —
    /// and publishes the manifest in the ImageRegistry with the user as owner. Publishing
    /// the same module, name, version and policy again returns the existing image.
    ///
    /// # Errors
    /// [`Error::NoKey`], [`Error::Store`], [`Error::Cas`], [`Error::Reverted`].
    pub async fn publish_image(&self, req: &PublishRequest) -> Result<Image, Error> {
        let wallet = self.require_wallet()?;
        let cas_url = req
            .cas
            .clone()
            .or_else(|| self.inner.cas_url.clone())
            .ok_or(Error::NoKey { what: "CAS URL (ECLD_CAS or --cas)" })?;
        let token = req
            .cas_token
            .clone()
            .or_else(|| self.inner.cas_token.clone())
            .ok_or(Error::NoKey { what: "CAS admin token (ECLD_CAS_TOKEN)" })?;
        let platforms = platform_bits(&req.policy);
        if platforms == 0 {
            return Err(Error::Protocol(
                "the policy allows no platform: give tdx or sgx requirements, or sim with danger_allow_sim".into(),
            ));
        }
        let code_cid = self.upload(&req.module).await?;
        let measurement = B256::from(ecld_tee::sim::measure(&req.module));
        let session_name = format!("{}@{}-{}", req.name, req.version, &hex_of(&measurement[..8]));
        let session = self.cas_session(&cas_url, &token, &session_name, &req.policy).await?;
        let enclave_key = crate::keys::key_of(&session.enclave_recipient)
            .map_err(|e| Error::Cas { url: cas_url.clone(), reason: e.to_string() })?;
        let manifest = ImageManifest {
            codeCid: code_cid,
            measurement,
            enclaveKey: enclave_key,
            enclaveSigner: session.enclave_signer,
            casIdentity: session.cas_identity,
            platforms,
            owner: wallet.address(),
            name: req.name.clone(),
            version: req.version.clone(),
        };
        let registry = self.registry();
        let id =
            registry.imageIdOf(manifest.clone()).call().await.map_err(|e| self.chain_err(e))?;
        if let Ok(existing) = self.image(ImageId(id)).await {
            return Ok(existing);
        }
        self.send("publish", registry.publish(manifest)).await?;
        self.image(ImageId(id)).await
    }

    /// Revokes an image this account published: from the block it is mined in, the
    /// Marketplace refuses every claim and proof for the image, and the requesters of its
    /// open and held tasks can reclaim their escrow at once. For an image whose enclave key
    /// leaked or whose code is unsafe; it cannot be undone (publish a new version).
    ///
    /// # Errors
    /// [`Error::NoKey`]; [`Error::Reverted`] when the account is not the image's owner.
    pub async fn revoke_image(&self, id: ImageId) -> Result<B256, Error> {
        self.require_wallet()?;
        let receipt = self.send("revoke", self.registry().revoke(id.0)).await?;
        Ok(receipt.transaction_hash)
    }

    async fn cas_session(
        &self,
        url: &str,
        token: &str,
        name: &str,
        policy: &Policy,
    ) -> Result<SessionInfo, Error> {
        let err = |reason: String| Error::Cas { url: url.to_owned(), reason };
        let http = reqwest::Client::new();
        let base = url.trim_end_matches('/');
        let existing = http
            .get(format!("{base}/v1/sessions/{name}"))
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if existing.status().is_success() {
            return existing.json().await.map_err(|e| err(format!("unreadable session: {e}")));
        }
        let created = http
            .post(format!("{base}/v1/sessions"))
            .bearer_auth(token)
            .json(&CreateSession { name, policy })
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !created.status().is_success() {
            let status = created.status();
            let body = created.text().await.unwrap_or_default();
            return Err(err(format!(
                "creating session {name}: {status}: {}",
                body.chars().take(300).collect::<String>()
            )));
        }
        created.json().await.map_err(|e| err(format!("unreadable session: {e}")))
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
