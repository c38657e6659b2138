//! A client of the CAS HTTP API, including the enclave's side of mutual attestation.

use alloy_primitives::{Address, Signature};
use ecld_crypto::{AgeIdentity, envelope};
use ecld_tee::{EvidenceProvider, Policy, ReportData};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    AdminToken, CasError, ImageSecrets,
    api::{
        AttestRequest, AttestResponse, CreateSession, ErrorBody, NonceRequest, NonceResponse,
        SessionInfo, response_digest,
    },
};

/// Talks to a CAS over HTTP.
#[derive(Debug, Clone)]
pub struct CasClient {
    base: String,
    http: reqwest::Client,
    admin_token: Option<AdminToken>,
}

impl CasClient {
    /// A client of the CAS at `base_url` (e.g. `http://127.0.0.1:7400`).
    pub fn new(base_url: &str) -> Result<Self, CasError> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CasError::Config(format!(
                "CAS URL `{base_url}` must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| CasError::Config(format!("HTTP client: {e}")))?;
        Ok(Self { base, http, admin_token: None })
    }

    /// Uses `token` for admin requests.
    #[must_use]
    pub fn with_admin_token(mut self, token: AdminToken) -> Self {
        self.admin_token = Some(token);
        self
    }

    /// The CAS base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<T, CasError> {
        let url = format!("{}{path}", self.base);
        let transport =
            |e: reqwest::Error| CasError::Transport { url: url.clone(), reason: e.to_string() };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| CasError::BadResponse(format!("{path}: {e}")));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(CasError::Refused {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            }),
            Err(_) => Err(CasError::Refused {
                status: status.as_u16(),
                code: "http_error".into(),
                message: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            }),
        }
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        admin: bool,
    ) -> Result<T, CasError> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if admin {
            let token = self.admin_token.as_ref().ok_or_else(|| {
                CasError::Config("an admin token is needed for this request (--admin-token)".into())
            })?;
            req = req.bearer_auth(token.expose());
        }
        self.send(req, path).await
    }

    /// The CAS identity address (`GET /v1/identity`). Pin it from a trusted source, not from
    /// this call, when it matters.
    pub async fn identity(&self) -> Result<Address, CasError> {
        #[derive(serde::Deserialize)]
        struct Id {
            cas_identity: Address,
        }
        let id: Id =
            self.send(self.http.get(format!("{}/v1/identity", self.base)), "/v1/identity").await?;
        Ok(id.cas_identity)
    }

    /// Creates an image session (admin). Creating the same name with the same policy again
    /// returns the existing session.
    pub async fn create_session(
        &self,
        name: &str,
        policy: &Policy,
    ) -> Result<SessionInfo, CasError> {
        self.post(
            "/v1/sessions",
            &CreateSession { name: name.to_owned(), policy: policy.clone() },
            true,
        )
        .await
    }

    /// A session's public halves and policy.
    pub async fn session(&self, name: &str) -> Result<SessionInfo, CasError> {
        let path = format!("/v1/sessions/{name}");
        self.send(self.http.get(format!("{}{path}", self.base)), &path).await
    }

    /// A fresh single-use nonce for `session`.
    pub async fn nonce(&self, session: &str) -> Result<NonceResponse, CasError> {
        self.post("/v1/nonce", &NonceRequest { session: session.to_owned() }, false).await
    }

    /// Sends an attestation request as is (no checks on the answer).
    pub async fn attest_raw(&self, req: &AttestRequest) -> Result<AttestResponse, CasError> {
        self.post("/v1/attest", req, false).await
    }

    /// The enclave's side of mutual attestation: gets a nonce, makes an ephemeral X25519 key,
    /// has `platform` produce evidence binding both, sends it, then checks the answer is signed
    /// by `expected_cas_identity` (pinned in the image manifest) and opens the secrets.
    pub async fn attest(
        &self,
        session: &str,
        platform: &impl EvidenceProvider,
        expected_cas_identity: Address,
    ) -> Result<ImageSecrets, CasError> {
        let nonce = self.nonce(session).await?.nonce;
        let ephemeral = AgeIdentity::generate();
        let recipient = ephemeral.recipient().to_string();
        let report_data = ReportData::for_attestation(session, &nonce, &recipient);
        let evidence = platform.evidence(&report_data).map_err(CasError::EvidenceUnavailable)?;
        let req = AttestRequest {
            session: session.to_owned(),
            nonce,
            ephemeral_recipient: recipient,
            evidence,
        };
        let resp = self.attest_raw(&req).await?;
        open_response(&req, &resp, &ephemeral, expected_cas_identity)
    }
}

/// Checks an attestation answer against its request and the pinned CAS identity, and
/// decrypts the secrets with the ephemeral identity.
pub fn open_response(
    req: &AttestRequest,
    resp: &AttestResponse,
    ephemeral: &AgeIdentity,
    expected_cas_identity: Address,
) -> Result<ImageSecrets, CasError> {
    if resp.session != req.session
        || resp.nonce != req.nonce
        || resp.ephemeral_recipient != req.ephemeral_recipient
    {
        return Err(CasError::BadResponse(
            "the answer is for another session, nonce or key than the request".into(),
        ));
    }
    let digest = response_digest(
        &resp.session,
        &resp.nonce,
        &resp.ephemeral_recipient,
        &resp.sealed_secrets,
    );
    let signature = Signature::from_raw(&resp.signature)
        .map_err(|e| CasError::BadResponse(format!("signature is not 65 bytes r‖s‖v: {e}")))?;
    let signer = signature
        .recover_address_from_prehash(&digest)
        .map_err(|e| CasError::BadResponse(format!("signature does not recover: {e}")))?;
    if signer != expected_cas_identity {
        return Err(CasError::WrongCasIdentity { expected: expected_cas_identity, actual: signer });
    }
    let bundle =
        zeroize::Zeroizing::new(envelope::decrypt_bytes(ephemeral, &resp.sealed_secrets).map_err(
            |e| CasError::BadResponse(format!("cannot decrypt the sealed secrets: {e}")),
        )?);
    let secrets = ImageSecrets::from_bundle_json(&bundle).map_err(CasError::BadResponse)?;
    if secrets.session() != req.session {
        return Err(CasError::BadResponse(format!(
            "sealed secrets are for session `{}`, not `{}`",
            secrets.session(),
            req.session
        )));
    }
    Ok(secrets)
}
