//! WebSocket: the same methods, plus `eth_subscribe` for `newHeads` and `logs`.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Rpc, devnet};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn request(ws: &mut Ws, id: u64, method: &str, params: Value) -> Value {
    let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    ws.send(Message::Text(req.to_string().into())).await.unwrap();
    next_json(ws).await
}

#[tokio::test]
async fn subscriptions_deliver_heads_and_matching_logs() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let (mut ws, _) = tokio_tungstenite::connect_async(d.ws_url()).await.unwrap();
    assert_eq!(request(&mut ws, 1, "eth_chainId", json!([])).await["result"], json!("0x7a69"));
    let me = d.accounts()[0].address();
    let counter = crate::common::deploy(&rpc, me, crate::common::bytecode("Counter")).await;
    let heads = request(&mut ws, 2, "eth_subscribe", json!(["newHeads"])).await["result"].clone();
    let logs =
        request(&mut ws, 3, "eth_subscribe", json!(["logs", {"address": counter}])).await["result"]
            .clone();
    assert!(heads.is_string() && logs.is_string());
    assert_ne!(heads, logs);
    rpc.call("evm_mine", json!([])).await;
    let n = next_json(&mut ws).await;
    assert_eq!(n["method"], json!("eth_subscription"));
    assert_eq!(n["params"]["subscription"], heads);
    assert_eq!(n["params"]["result"]["number"], json!("0x2"));
    use alloy::sol_types::SolCall as _;
    let add = alloy::primitives::Bytes::from(
        crate::common::Counter::addCall { amount: alloy::primitives::U256::from(3) }.abi_encode(),
    );
    rpc.call("eth_sendTransaction", json!([{"from": me, "to": counter, "data": add}])).await;
    let mut got_head = false;
    let mut got_log = false;
    for _ in 0..2 {
        let n = next_json(&mut ws).await;
        if n["params"]["subscription"] == heads {
            assert_eq!(n["params"]["result"]["number"], json!("0x3"));
            got_head = true;
        } else {
            assert_eq!(n["params"]["subscription"], logs);
            assert_eq!(n["params"]["result"]["address"], json!(counter));
            assert_eq!(n["params"]["result"]["blockNumber"], json!("0x3"));
            got_log = true;
        }
    }
    assert!(got_head && got_log);
    assert_eq!(request(&mut ws, 4, "eth_unsubscribe", json!([heads])).await["result"], json!(true));
    assert_eq!(
        request(&mut ws, 5, "eth_subscribe", json!(["bogus"])).await["error"]["code"],
        json!(-32602)
    );
    // Over HTTP, subscriptions are refused with a hint.
    assert_eq!(
        rpc.try_call("eth_subscribe", json!(["newHeads"])).await.unwrap_err()["code"],
        json!(-32601)
    );
    // Shutdown closes the session instead of hanging.
    d.shutdown().await.unwrap();
}
