//! Errors of the CAS server and client, and their one conversion to HTTP responses.

use alloy_primitives::Address;
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use ecld_tee::TeeError;

use crate::api::{ErrorBody, ErrorDetail};

/// Everything that can go wrong in the CAS or when talking to it.
///
/// [`CasError::code`] is the stable code that travels in JSON refusals; a client sees a
/// server-side refusal as [`CasError::Refused`] with the same code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CasError {
    /// Missing or wrong admin bearer token.
    #[error(
        "admin endpoint: missing or wrong bearer token (send `Authorization: Bearer <admin token>`)"
    )]
    Unauthorized,
    /// No such session.
    #[error(
        "no session named `{name}`; create it with `POST /v1/sessions` (`ecld cas session create`)"
    )]
    SessionNotFound {
        /// The name asked for.
        name: String,
    },
    /// A session of that name exists with another policy.
    #[error(
        "session `{name}` already exists with a different policy; sessions are immutable, use a new name (e.g. bump the version after `@`)"
    )]
    SessionExists {
        /// The name.
        name: String,
    },
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The session's policy is unusable.
    #[error("{0}")]
    PolicyInvalid(#[source] TeeError),
    /// The nonce was never issued (or expired long ago and was forgotten).
    #[error("nonce was not issued by this CAS; get a fresh one from `POST /v1/nonce`")]
    NonceUnknown,
    /// The nonce has been used already.
    #[error("nonce was already used (replay refused); get a fresh one from `POST /v1/nonce`")]
    NonceReplayed,
    /// The nonce expired.
    #[error("nonce expired at {expired_at} (Unix seconds); get a fresh one from `POST /v1/nonce`")]
    NonceExpired {
        /// Expiry time.
        expired_at: u64,
    },
    /// The nonce was issued for another session.
    #[error("nonce was issued for session `{issued_for}`, not this one")]
    NonceWrongSession {
        /// Session it belongs to.
        issued_for: String,
    },
    /// Too many outstanding nonces.
    #[error("too many outstanding nonces ({0}); retry after a few seconds")]
    TooManyNonces(usize),
    /// The evidence was refused by the session policy.
    #[error("attestation refused: {0}")]
    Evidence(#[source] TeeError),
    /// Persistent state could not be read or written.
    #[error(
        "CAS storage error on {what}: {reason}; check the state directory's disk and permissions"
    )]
    Storage {
        /// File or object concerned.
        what: String,
        /// Why.
        reason: String,
    },
    /// Configuration is unusable.
    #[error("CAS configuration: {0}")]
    Config(String),
    /// An internal failure that is not the caller's fault.
    #[error("internal CAS error: {0}")]
    Internal(String),

    // Client side.
    /// The CAS refused the request.
    #[error("CAS refused ({status} {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Error code from the body.
        code: String,
        /// Message from the body.
        message: String,
    },
    /// The answer is signed by another CAS identity than the one pinned in the image manifest.
    #[error(
        "the CAS answered as {actual}, but the image pins CAS identity {expected}: refusing its secrets (wrong or impersonated CAS)"
    )]
    WrongCasIdentity {
        /// The pinned identity.
        expected: Address,
        /// The identity that signed.
        actual: Address,
    },
    /// The answer does not match the request or cannot be opened.
    #[error("invalid CAS answer: {0}")]
    BadResponse(String),
    /// The HTTP request failed.
    #[error("cannot reach the CAS at {url}: {reason}")]
    Transport {
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The local platform could not produce evidence.
    #[error("cannot produce evidence: {0}")]
    EvidenceUnavailable(#[source] TeeError),
}

impl CasError {
    /// The stable code (for [`CasError::Refused`], the server's code).
    pub fn code(&self) -> &str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::SessionNotFound { .. } => "session_not_found",
            Self::SessionExists { .. } => "session_exists",
            Self::InvalidRequest(_) => "invalid_request",
            Self::PolicyInvalid(_) => "policy_invalid",
            Self::NonceUnknown => "nonce_unknown",
            Self::NonceReplayed => "nonce_replayed",
            Self::NonceExpired { .. } => "nonce_expired",
            Self::NonceWrongSession { .. } => "nonce_wrong_session",
            Self::TooManyNonces(_) => "too_many_nonces",
            Self::Evidence(e) => e.code(),
            Self::Storage { .. } => "storage",
            Self::Config(_) => "config",
            Self::Internal(_) => "internal",
            Self::Refused { code, .. } => code,
            Self::WrongCasIdentity { .. } => "wrong_cas_identity",
            Self::BadResponse(_) => "bad_response",
            Self::Transport { .. } => "transport",
            Self::EvidenceUnavailable(e) => e.code(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::SessionNotFound { .. } => StatusCode::NOT_FOUND,
            Self::SessionExists { .. } => StatusCode::CONFLICT,
            Self::InvalidRequest(_) | Self::PolicyInvalid(_) => StatusCode::BAD_REQUEST,
            Self::NonceUnknown
            | Self::NonceReplayed
            | Self::NonceExpired { .. }
            | Self::NonceWrongSession { .. }
            | Self::Evidence(_) => StatusCode::FORBIDDEN,
            Self::TooManyNonces(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn storage(what: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        Self::Storage { what: what.to_string(), reason: err.to_string() }
    }
}

impl IntoResponse for CasError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail { code: self.code().to_owned(), message: self.to_string() },
        };
        (status, Json(body)).into_response()
    }
}
