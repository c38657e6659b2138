//! The `newHeads` subscription: a WebSocket to the chain whose notifications wake the follower
//! the moment a block is mined. It carries nothing the node relies on: the follower still reads
//! the Marketplace's events with `eth_getLogs` over the block range, so a lost notification,
//! a dropped socket or an endpoint without subscriptions (a plain HTTP JSON-RPC) only costs
//! latency — the follower then polls every `poll_interval` until this task re-subscribes.

use std::{sync::Arc, time::Duration};

use futures::{SinkExt as _, StreamExt as _};
use reqwest::Url;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::{metrics, retry::Backoff};

/// Re-subscription backoff: quick at first, then every 10 s at most (jittered), forever.
const RESUBSCRIBE: Backoff =
    Backoff { initial: Duration::from_millis(250), max: Duration::from_secs(10), attempts: 0 };

/// How long connecting and the `eth_subscribe` answer may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the follower learns of new blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Interval polling only (no subscription, or it is being re-established).
    Polling,
    /// A live `newHeads` subscription wakes the follower.
    Subscribed,
}

fn set_mode(mode: &watch::Sender<Mode>, m: Mode) {
    ::metrics::gauge!(metrics::SUBSCRIBED).set(if m == Mode::Subscribed { 1.0 } else { 0.0 });
    let _ = mode.send(m);
}

/// Keeps a `newHeads` subscription on `url` until `stop`: every notification (and every
/// (re)subscription, to catch up on what was mined meanwhile) wakes `wake`; `mode` says
/// whether the subscription is live. Reconnects with backoff and jitter, forever.
pub(super) async fn follow(
    url: Url,
    wake: Arc<Notify>,
    mode: watch::Sender<Mode>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let ended = tokio::select! {
            _ = stop.changed() => return,
            ended = session(&url, &wake, &mode) => ended,
        };
        let was_live = *mode.borrow() == Mode::Subscribed;
        set_mode(&mode, Mode::Polling);
        // Whatever was mined while the socket was going down is read by a poll now.
        wake.notify_one();
        failures = if was_live { 1 } else { failures.saturating_add(1) };
        let wait = RESUBSCRIBE.delay(failures.min(16));
        if was_live {
            tracing::warn!(target: "ecld_node", %url, why = %ended, "new-head subscription lost; polling the chain until it is re-established");
        } else if failures == 1 {
            tracing::warn!(target: "ecld_node", %url, why = %ended, "no new-head subscription; polling the chain (retrying the subscription with backoff)");
        } else {
            tracing::debug!(target: "ecld_node", %url, why = %ended, failures, "new-head subscription still unavailable");
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One connection: subscribe, then wake the follower on each notification. Returns why it
/// ended.
async fn session(url: &Url, wake: &Notify, mode: &watch::Sender<Mode>) -> String {
    let connect = tokio_tungstenite::connect_async(url.as_str());
    let mut ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connect).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return format!("cannot open a WebSocket: {e}"),
        Err(_) => return format!("no WebSocket handshake within {HANDSHAKE_TIMEOUT:?}"),
    };
    let request = r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#;
    if let Err(e) = ws.send(Message::text(request)).await {
        return format!("cannot send eth_subscribe: {e}");
    }
    let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        while let Some(msg) = ws.next().await {
            let text = match msg {
                Ok(Message::Text(t)) => t.as_str().to_owned(),
                Ok(Message::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
                Ok(Message::Close(_)) => return Err("closed before answering eth_subscribe".into()),
                Ok(_) => continue,
                Err(e) => return Err(e.to_string()),
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
            if v.get("id") != Some(&Value::from(1)) {
                continue;
            }
            return match v.get("result").and_then(Value::as_str) {
                Some(id) => Ok(id.to_owned()),
                None => Err(format!(
                    "the endpoint refused eth_subscribe(\"newHeads\"): {}",
                    v.get("error").unwrap_or(&v)
                )),
            };
        }
        Err("closed before answering eth_subscribe".to_owned())
    })
    .await;
    let id = match answer {
        Ok(Ok(id)) => id,
        Ok(Err(why)) => return why,
        Err(_) => return format!("no answer to eth_subscribe within {HANDSHAKE_TIMEOUT:?}"),
    };
    set_mode(mode, Mode::Subscribed);
    tracing::info!(target: "ecld_node", %url, subscription = %id, "following the chain by newHeads subscription; eth_getLogs reads each new block");
    wake.notify_one();
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(t)) if t.as_str().contains("eth_subscription") => {
                ::metrics::counter!(metrics::HEADS).increment(1);
                wake.notify_one();
            }
            Ok(Message::Close(frame)) => {
                return format!("closed by the endpoint ({frame:?})");
            }
            Ok(_) => {}
            Err(e) => return e.to_string(),
        }
    }
    "the connection ended".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn mine(url: &str) {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []});
        let r = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
        assert!(r.status().is_success());
    }

    async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(20), f)
            .await
            .unwrap_or_else(|_| panic!("timed out: {what}"))
    }

    #[tokio::test]
    async fn a_block_wakes_the_follower_and_a_restarted_endpoint_is_subscribed_again() {
        let devnet = ecld_devnet::spawn(ecld_devnet::DevnetConfig::ephemeral()).await.unwrap();
        let bind = devnet.addr();
        let wake = Arc::new(Notify::new());
        let (mode_tx, mut mode) = watch::channel(Mode::Polling);
        let (stop_tx, stop) = watch::channel(false);
        let url: Url = devnet.ws_url().parse().unwrap();
        let task = tokio::spawn(follow(url, Arc::clone(&wake), mode_tx, stop));
        within("subscribed", mode.wait_for(|m| *m == Mode::Subscribed)).await.unwrap();
        // The wake-up of the subscription itself, then one per mined block.
        within("the subscription's wake-up", wake.notified()).await;
        mine(&devnet.url()).await;
        within("a wake-up for the mined block", wake.notified()).await;

        // The endpoint goes away: polling, with a wake-up to catch up.
        devnet.shutdown().await.unwrap();
        within("polling", mode.wait_for(|m| *m == Mode::Polling)).await.unwrap();
        within("the catch-up wake-up", wake.notified()).await;
        // Back on the same port: subscribed again, and blocks wake the follower again.
        let devnet = ecld_devnet::spawn(ecld_devnet::DevnetConfig {
            bind,
            ..ecld_devnet::DevnetConfig::ephemeral()
        })
        .await
        .unwrap();
        within("subscribed again", mode.wait_for(|m| *m == Mode::Subscribed)).await.unwrap();
        within("the re-subscription's wake-up", wake.notified()).await;
        mine(&devnet.url()).await;
        within("a wake-up for a block of the restarted chain", wake.notified()).await;
        stop_tx.send(true).unwrap();
        within("stopped", task).await.unwrap();
    }

    #[tokio::test]
    async fn an_endpoint_without_websocket_leaves_the_node_polling() {
        // A plain HTTP server (no upgrade): the devnet's port answers, this one refuses.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s
                    .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let wake = Arc::new(Notify::new());
        let (mode_tx, mode) = watch::channel(Mode::Polling);
        let (stop_tx, stop) = watch::channel(false);
        let url: Url = format!("ws://{addr}").parse().unwrap();
        let task = tokio::spawn(follow(url, Arc::clone(&wake), mode_tx, stop));
        // Each failed attempt wakes the follower (a poll covers the gap) and stays polling.
        within("a failed attempt", wake.notified()).await;
        within("a second failed attempt", wake.notified()).await;
        assert_eq!(*mode.borrow(), Mode::Polling);
        stop_tx.send(true).unwrap();
        within("stopped", task).await.unwrap();
    }
}
