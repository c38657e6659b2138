//! The HTTP and WebSocket server (one port), the interval miner, and subscriptions.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::{
        DefaultBodyLimit, State,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::{
    chain::Block,
    node::Node,
    rpc::{self, RpcError, convert},
};

/// Largest request body accepted (contract deployments with big init code fit easily).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Shared with every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) node: Arc<Node>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// The router: `POST /` for JSON-RPC over HTTP, `GET /` upgrades to a WebSocket.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", post(http).get(ws))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn json_response(v: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

async fn http(State(state): State<AppState>, body: Bytes) -> Response {
    let node = Arc::clone(&state.node);
    match tokio::task::spawn_blocking(move || rpc::handle_body(&node, &body)).await {
        Ok(Some(v)) => json_response(&v),
        Ok(None) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::error!(target: "ecld_devnet", %e, "request handler panicked");
            let err = RpcError::new(
                rpc::error::INTERNAL_ERROR,
                "internal error: the request handler failed",
            );
            json_response(&json!({"jsonrpc": "2.0", "id": null, "error": err}))
        }
    }
}

async fn ws(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.max_message_size(MAX_BODY).on_upgrade(move |socket| session(socket, state))
}

/// What a subscription delivers.
enum Subscription {
    NewHeads,
    Logs(Box<alloy::rpc::types::Filter>),
}

/// One WebSocket connection: requests, answers, and notifications for its subscriptions.
async fn session(socket: WebSocket, state: AppState) {
    let (mut tx, mut rx) = socket.split();
    let mut events = state.node.events.subscribe();
    let mut shutdown = state.shutdown.clone();
    let mut subs: HashMap<String, Subscription> = HashMap::new();
    let mut next_id: u64 = 1;
    loop {
        let outgoing: Vec<Value> = tokio::select! {
            _ = shutdown.changed() => break,
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    match handle_ws_text(&state.node, &mut subs, &mut next_id, text.as_str()).await {
                        Some(v) => vec![v],
                        None => continue,
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    match String::from_utf8(bytes.to_vec()) {
                        Ok(text) => match handle_ws_text(&state.node, &mut subs, &mut next_id, &text).await {
                            Some(v) => vec![v],
                            None => continue,
                        },
                        Err(_) => continue,
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
            ev = events.recv() => match ev {
                Ok(block) => notifications(&subs, &block),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(target: "ecld_devnet", skipped = n, "a WebSocket subscriber fell behind; blocks skipped");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        };
        for v in outgoing {
            if tx.send(Message::Text(v.to_string().into())).await.is_err() {
                return;
            }
        }
    }
    let _ = tx.send(Message::Close(None)).await;
}

fn notifications(subs: &HashMap<String, Subscription>, block: &Block) -> Vec<Value> {
    let mut out = Vec::new();
    for (id, sub) in subs {
        let mut push = |result: Value| {
            out.push(json!({
                "jsonrpc": "2.0",
                "method": "eth_subscription",
                "params": {"subscription": id, "result": result},
            }));
        };
        match sub {
            Subscription::NewHeads => push(json!(convert::header(block))),
            Subscription::Logs(filter) => {
                if !filter.matches_bloom(block.header.logs_bloom) {
                    continue;
                }
                for (i, tx) in block.txs.iter().enumerate() {
                    for log in convert::logs(block, i, tx) {
                        if filter.matches_address(log.address())
                            && filter.matches_topics(log.topics())
                        {
                            push(json!(log));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Answers one WebSocket text frame. Subscriptions are per connection and handled here;
/// everything else goes through the same JSON-RPC handler as HTTP.
async fn handle_ws_text(
    node: &Arc<Node>,
    subs: &mut HashMap<String, Subscription>,
    next_id: &mut u64,
    text: &str,
) -> Option<Value> {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => {
            let node = Arc::clone(node);
            let body = text.as_bytes().to_vec();
            return tokio::task::spawn_blocking(move || rpc::handle_body(&node, &body))
                .await
                .ok()
                .flatten();
        }
    };
    let method = v.get("method").and_then(Value::as_str);
    if matches!(method, Some("eth_subscribe" | "eth_unsubscribe")) {
        return match rpc::parse_request(v) {
            Err(bad) => {
                let (id, e) = *bad;
                Some(json!({"jsonrpc": "2.0", "id": id, "error": e}))
            }
            Ok(req) => {
                let result = if req.method == "eth_subscribe" {
                    subscribe(subs, next_id, &req.params)
                } else {
                    req.params
                        .get::<String>(0, "subscription id")
                        .map(|id| json!(subs.remove(&id).is_some()))
                };
                let id = req.id.unwrap_or(Value::Null);
                Some(match result {
                    Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
                    Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e}),
                })
            }
        };
    }
    let node = Arc::clone(node);
    tokio::task::spawn_blocking(move || match v {
        Value::Array(_) => rpc::handle_body(&node, v.to_string().as_bytes()),
        other => rpc::handle_value(&node, other),
    })
    .await
    .ok()
    .flatten()
}

fn subscribe(
    subs: &mut HashMap<String, Subscription>,
    next_id: &mut u64,
    p: &rpc::Params,
) -> Result<Value, RpcError> {
    p.at_most(2)?;
    let kind: String = p.get(0, "subscription kind")?;
    let sub = match kind.as_str() {
        "newHeads" => Subscription::NewHeads,
        "logs" => Subscription::Logs(Box::new(p.opt(1, "filter")?.unwrap_or_default())),
        other => {
            return Err(RpcError::invalid_params(format!(
                "unsupported subscription {other:?}: use \"newHeads\" or \"logs\""
            )));
        }
    };
    let id = format!("{:#034x}", u128::from(*next_id) | (1u128 << 64));
    *next_id += 1;
    subs.insert(id.clone(), sub);
    Ok(json!(id))
}

/// Mines a block every `every` until shutdown.
pub(crate) async fn interval_miner(
    node: Arc<Node>,
    every: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                let node = Arc::clone(&node);
                match tokio::task::spawn_blocking(move || node.mine(None)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(target: "ecld_devnet", %e, "interval mining failed"),
                    Err(e) => tracing::error!(target: "ecld_devnet", %e, "interval miner panicked"),
                }
            }
        }
    }
}
