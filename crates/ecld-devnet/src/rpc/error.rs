//! JSON-RPC errors: the codes clients act on, and the one conversion from chain errors.

use alloy::primitives::hex;
use serde::Serialize;
use serde_json::Value;

use crate::chain::ChainError;

/// Invalid JSON.
pub(crate) const PARSE_ERROR: i64 = -32700;
/// Valid JSON, but not a JSON-RPC request.
pub(crate) const INVALID_REQUEST: i64 = -32600;
/// No such method.
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
/// The parameters do not fit the method.
pub(crate) const INVALID_PARAMS: i64 = -32602;
/// A fault of the devnet itself.
pub(crate) const INTERNAL_ERROR: i64 = -32603;
/// The transaction or query was refused (geth's code for nonce too low and friends).
pub(crate) const SERVER_ERROR: i64 = -32000;
/// Execution reverted; `data` carries the revert bytes (geth, hardhat, anvil).
pub(crate) const EXECUTION_REVERTED: i64 = 3;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<Value>,
}

impl RpcError {
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }

    pub(crate) fn invalid_params(message: impl std::fmt::Display) -> Self {
        Self::new(INVALID_PARAMS, format!("invalid params: {message}"))
    }
}

impl From<ChainError> for RpcError {
    fn from(e: ChainError) -> Self {
        let message = e.to_string();
        match e {
            ChainError::Reverted(data) => Self {
                code: EXECUTION_REVERTED,
                message,
                data: Some(Value::String(hex::encode_prefixed(&data))),
            },
            ChainError::Malformed(_) => Self::new(INVALID_PARAMS, message),
            ChainError::Persist(_) => Self::new(INTERNAL_ERROR, message),
            ChainError::NonceTooLow { .. }
            | ChainError::ChainId { .. }
            | ChainError::AlreadyKnown(_)
            | ChainError::Invalid(_)
            | ChainError::Halted(_)
            | ChainError::UnknownBlock(_)
            | ChainError::HistoricalState(_)
            | ChainError::Unsupported(_)
            | ChainError::UnknownAccount(_) => Self::new(SERVER_ERROR, message),
        }
    }
}
