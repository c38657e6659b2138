//! The HTTP server: routes, handlers, shared state.

use std::{collections::HashMap, sync::Arc};

use alloy_primitives::Address;
use alloy_signer::SignerSync;
use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header::AUTHORIZATION},
    routing::{get, post},
};
use ecld_crypto::{AgeIdentity, AgeRecipient, SignerKey, envelope};
use ecld_tee::ReportData;
use serde::de::DeserializeOwned;
use std::sync::Mutex;

use crate::{
    CasConfig, CasError, CasHandle, ImageSecrets, MAX_OUTSTANDING_NONCES,
    api::{
        AttestRequest, AttestResponse, CreateSession, NonceRequest, NonceResponse, SessionInfo,
        response_digest, valid_session_name,
    },
    audit::{AuditEvent, AuditLog},
    store::{NonceEntry, SessionRecord, Store},
    unix_now,
};

const TARGET: &str = "ecld_cas";

struct Inner {
    store: Store,
    sessions: HashMap<String, SessionRecord>,
    nonces: HashMap<String, NonceEntry>,
}

struct Cas {
    config: CasConfig,
    identity: SignerKey,
    master: AgeIdentity,
    audit: AuditLog,
    inner: Mutex<Inner>,
}

type Shared = Arc<Cas>;

impl Cas {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, CasError> {
        self.inner.lock().map_err(|_| CasError::Internal("state lock poisoned".into()))
    }

    fn audit(&self, event: AuditEvent<'_>) -> Result<(), CasError> {
        self.audit.record(&AuditEvent { ts: unix_now(), ..event })
    }
}

pub(crate) async fn spawn(config: CasConfig) -> Result<CasHandle, CasError> {
    if config.admin_token.expose().trim().is_empty() {
        return Err(CasError::Config("admin_token is empty; set a long random token".into()));
    }
    let dir = config.state_dir.clone();
    let (store, master, sessions, nonces) = Store::open(&dir, unix_now())?;
    let key_path =
        config.identity_key_file.clone().unwrap_or_else(|| Store::default_identity_path(&dir));
    let identity = if key_path.exists() {
        SignerKey::load(&key_path).map_err(|e| CasError::Config(e.to_string()))?
    } else {
        let key = SignerKey::generate();
        key.save(&key_path).map_err(|e| CasError::storage(key_path.display(), e))?;
        key
    };
    let audit = AuditLog::open(&dir.join("audit.jsonl"))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| CasError::Config(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener.local_addr().map_err(|e| CasError::Config(e.to_string()))?;
    let identity_addr = identity.address();
    let cas = Arc::new(Cas {
        config,
        identity,
        master,
        audit,
        inner: Mutex::new(Inner { store, sessions, nonces }),
    });
    let app = Router::new()
        .route("/v1/identity", get(identity_handler))
        .route("/v1/sessions", post(create_session))
        .route("/v1/sessions/{name}", get(get_session))
        .route("/v1/nonce", post(issue_nonce))
        .route("/v1/attest", post(attest))
        .with_state(cas);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(target: TARGET, "CAS server stopped: {e}");
        }
    });
    tracing::info!(target: TARGET, %addr, identity = %identity_addr, "CAS listening");
    Ok(CasHandle { addr, identity: identity_addr, shutdown: Some(tx), task })
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, CasError> {
    serde_json::from_slice(body).map_err(|e| CasError::InvalidRequest(format!("body: {e}")))
}

#[derive(serde::Serialize)]
struct IdentityInfo {
    cas_identity: Address,
}

async fn identity_handler(State(cas): State<Shared>) -> Json<IdentityInfo> {
    Json(IdentityInfo { cas_identity: cas.identity.address() })
}

async fn create_session(
    State(cas): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<SessionInfo>), CasError> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !cas.config.admin_token.matches(token.trim()) {
        return Err(CasError::Unauthorized);
    }
    let req: CreateSession = parse(&body)?;
    if !valid_session_name(&req.name) {
        return Err(CasError::InvalidRequest(format!(
            "session name `{}` must be 1-128 characters of A-Z a-z 0-9 . _ - @ : +",
            req.name.chars().take(140).collect::<String>()
        )));
    }
    req.policy.check().map_err(CasError::PolicyInvalid)?;
    let cas_identity = cas.identity.address();
    let mut inner = cas.lock()?;
    if let Some(existing) = inner.sessions.get(&req.name) {
        if existing.policy == req.policy {
            return Ok((StatusCode::OK, Json(existing.info(cas_identity))));
        }
        cas.audit(AuditEvent {
            event: "session_exists",
            session: Some(&req.name),
            code: Some("session_exists"),
            ..AuditEvent::default()
        })?;
        return Err(CasError::SessionExists { name: req.name });
    }
    let secrets = ImageSecrets::generate(&req.name);
    let bundle = secrets.to_bundle_json()?;
    let sealed = envelope::encrypt_bytes(&[cas.master.recipient()], false, &bundle)
        .map_err(|e| CasError::Internal(format!("sealing secrets: {e}")))?;
    let record = SessionRecord {
        name: req.name.clone(),
        policy: req.policy,
        enclave_recipient: secrets.recipient().to_string(),
        enclave_signer: secrets.signer_address(),
        created_at: unix_now(),
        sealed,
    };
    inner.store.save_session(&record)?;
    let platforms: Vec<String> =
        record.policy.platforms().iter().map(ToString::to_string).collect();
    cas.audit(AuditEvent {
        event: "session_created",
        session: Some(&record.name),
        platform: Some(&platforms.join(",")),
        ..AuditEvent::default()
    })?;
    tracing::info!(target: TARGET, session = %record.name, platforms = %platforms.join(","), "session created");
    let info = record.info(cas_identity);
    inner.sessions.insert(record.name.clone(), record);
    Ok((StatusCode::CREATED, Json(info)))
}

async fn get_session(
    State(cas): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<SessionInfo>, CasError> {
    let inner = cas.lock()?;
    let record = inner.sessions.get(&name).ok_or(CasError::SessionNotFound { name })?;
    Ok(Json(record.info(cas.identity.address())))
}

async fn issue_nonce(
    State(cas): State<Shared>,
    body: Bytes,
) -> Result<Json<NonceResponse>, CasError> {
    let req: NonceRequest = parse(&body)?;
    let now = unix_now();
    let mut inner = cas.lock()?;
    if !inner.sessions.contains_key(&req.session) {
        return Err(CasError::SessionNotFound { name: req.session });
    }
    if inner.nonces.len() >= MAX_OUTSTANDING_NONCES {
        inner.nonces.retain(|_, e| e.expires_at > now);
        if inner.nonces.len() >= MAX_OUTSTANDING_NONCES {
            return Err(CasError::TooManyNonces(MAX_OUTSTANDING_NONCES));
        }
    }
    let nonce = hex::encode(rand::random::<[u8; 32]>());
    let expires_at = now.saturating_add(cas.config.nonce_ttl_secs);
    inner.store.record_issue(&nonce, &req.session, expires_at)?;
    inner.nonces.insert(
        nonce.clone(),
        NonceEntry { session: req.session.clone(), expires_at, used: false },
    );
    drop(inner);
    cas.audit(AuditEvent {
        event: "nonce_issued",
        session: Some(&req.session),
        nonce: Some(&nonce),
        ..AuditEvent::default()
    })?;
    Ok(Json(NonceResponse { nonce, session: req.session, expires_at }))
}

async fn attest(State(cas): State<Shared>, body: Bytes) -> Result<Json<AttestResponse>, CasError> {
    let req: AttestRequest = parse(&body)?;
    let platform = req.evidence.platform().to_string();
    match attest_inner(&cas, &req) {
        Ok(resp) => {
            cas.audit(AuditEvent {
                event: "attest_accepted",
                session: Some(&req.session),
                nonce: Some(&req.nonce),
                platform: Some(&platform),
                measurement: Some(&resp.measurement),
                ..AuditEvent::default()
            })?;
            tracing::info!(target: TARGET, session = %req.session, %platform, "attestation accepted");
            Ok(Json(resp))
        }
        Err(err) => {
            cas.audit(AuditEvent {
                event: "attest_refused",
                session: Some(&req.session),
                nonce: Some(&req.nonce),
                platform: Some(&platform),
                code: Some(err.code()),
                reason: Some(err.to_string()),
                ..AuditEvent::default()
            })?;
            tracing::warn!(target: TARGET, session = %req.session, %platform, code = err.code(), "attestation refused: {err}");
            Err(err)
        }
    }
}

fn attest_inner(cas: &Cas, req: &AttestRequest) -> Result<AttestResponse, CasError> {
    let ephemeral: AgeRecipient = req.ephemeral_recipient.parse().map_err(|e| {
        CasError::InvalidRequest(format!(
            "`ephemeral_recipient` is not an age X25519 recipient: {e}"
        ))
    })?;
    let now = unix_now();
    // Consume the nonce first: one nonce, one attempt, whatever the verdict.
    let record = {
        let mut inner = cas.lock()?;
        let record = inner
            .sessions
            .get(&req.session)
            .cloned()
            .ok_or_else(|| CasError::SessionNotFound { name: req.session.clone() })?;
        let entry = inner.nonces.get(&req.nonce).ok_or(CasError::NonceUnknown)?;
        if entry.used {
            return Err(CasError::NonceReplayed);
        }
        if entry.session != req.session {
            return Err(CasError::NonceWrongSession { issued_for: entry.session.clone() });
        }
        if entry.expires_at <= now {
            return Err(CasError::NonceExpired { expired_at: entry.expires_at });
        }
        inner.store.record_use(&req.nonce)?;
        if let Some(e) = inner.nonces.get_mut(&req.nonce) {
            e.used = true;
        }
        record
    };
    let expected = ReportData::for_attestation(&req.session, &req.nonce, &req.ephemeral_recipient);
    let evidence_time = cas.config.danger_evidence_time.unwrap_or(now);
    let verified = req
        .evidence
        .verify(&record.policy, &expected, evidence_time)
        .map_err(CasError::Evidence)?;

    let bundle = zeroize::Zeroizing::new(
        envelope::decrypt_bytes(&cas.master, &record.sealed)
            .map_err(|e| CasError::Internal(format!("unsealing session secrets: {e}")))?,
    );
    let sealed_secrets = envelope::encrypt_bytes(&[ephemeral], false, &bundle)
        .map_err(|e| CasError::Internal(format!("sealing to the ephemeral key: {e}")))?;
    let digest =
        response_digest(&req.session, &req.nonce, &req.ephemeral_recipient, &sealed_secrets);
    let signature = cas
        .identity
        .signer()
        .sign_hash_sync(&digest)
        .map_err(|e| CasError::Internal(format!("signing: {e}")))?;
    Ok(AttestResponse {
        session: req.session.clone(),
        nonce: req.nonce.clone(),
        ephemeral_recipient: req.ephemeral_recipient.clone(),
        platform: verified.platform,
        measurement: verified.measurement,
        sealed_secrets,
        cas_identity: cas.identity.address(),
        signature: signature.as_bytes().to_vec(),
    })
}
