//! Many tasks at once from one account: separate `ecld task run` processes with the same
//! key, and one SDK client with many tasks in flight. Every task succeeds; none fails because
//! another was sent at the same time (a transaction nonce or a permit nonce taken first, an
//! offer's last slot taken first).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::time::Duration;

use ecld_sdk::{Client, ClientConfig, TaskRequest, TaskState};
use ecld_types::StatusCode;

use crate::e2e_stack::Stack;

#[test]
fn eight_task_run_processes_with_one_key_all_succeed() {
    let stack = Stack::start();
    let children: Vec<_> = (0..8)
        .map(|i| {
            stack
                .cmd()
                .args(["--json", "task", "run", "stats", "--timeout-s", "600", "--input-text"])
                .arg(format!("{i} {} {}", i + 1, i * 3))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "process {i} exited {:?}\nstdout: {stdout}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["status_name"], "SUCCESS", "process {i}: {v}");
    }
    let list = stack.json(&["task", "list"], 0);
    assert_eq!(list.as_array().unwrap().len(), 8, "one task per process: {list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_with_64_tasks_in_flight_runs_them_all() {
    let stack = Stack::start();
    let client = Client::connect(&ClientConfig::load(&stack.config()).unwrap()).await.unwrap();
    let stats = client.resolve_image("stats").await.unwrap();
    let before = client.balance(None).await.unwrap();
    let runs = (0..64).map(|i| {
        let client = client.clone();
        async move {
            let req = TaskRequest::new(stats.id, format!("{i} {}\n", i * 7).into_bytes());
            client.run(&req, Duration::from_secs(300), |_, _| ()).await
        }
    });
    let results = futures::future::join_all(runs).await;
    let mut ids = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        let done = r.unwrap_or_else(|e| panic!("task {i} failed: {e}"));
        assert_eq!(done.status, StatusCode::Success, "task {i}");
        let out = done.output.expect("a result");
        assert!(!out.stdout.is_empty(), "task {i}: empty result");
        ids.push(done.task);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 64, "64 distinct tasks");
    for id in &ids {
        let info = client.task(*id).await.unwrap();
        assert_eq!(info.state, TaskState::Done { status: StatusCode::Success });
    }
    assert!(client.balance(None).await.unwrap() < before);
    assert!(client.ledger().await.unwrap().conserved());
}

/// As above with a deposit that covers half the escrows: the submissions that count on it
/// never count on the same tokens, those it does not cover pay with a permit, and every task
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_with_64_tasks_in_flight_and_a_deposit_for_half_of_them_runs_them_all() {
    let stack = Stack::start();
    let client = Client::connect(&ClientConfig::load(&stack.config()).unwrap()).await.unwrap();
    let stats = client.resolve_image("stats").await.unwrap();
    let price = client
        .offers()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.image == Some(stats.id))
        .map(|o| o.price)
        .min()
        .unwrap();
    client.deposit(price * ecld_types::U256::from(32u64)).await.unwrap();
    let before = client.balance(None).await.unwrap() + client.deposit_balance(None).await.unwrap();
    let runs = (0..64).map(|i| {
        let client = client.clone();
        async move {
            let mut req = TaskRequest::new(stats.id, format!("{i} {}\n", i * 5).into_bytes());
            req.price = Some(price);
            let s = client.submit(&req).await?;
            let info = client.wait(s.task, Duration::from_secs(300)).await?;
            Ok::<_, ecld_sdk::Error>((s.from_deposit, info.state))
        }
    });
    let results = futures::future::join_all(runs).await;
    let mut from_deposit = 0u64;
    for (i, r) in results.into_iter().enumerate() {
        let (drawn, state) = r.unwrap_or_else(|e| panic!("task {i} failed: {e}"));
        assert_eq!(state, TaskState::Done { status: StatusCode::Success }, "task {i}");
        from_deposit += u64::from(drawn);
    }
    assert!((1..=32).contains(&from_deposit), "{from_deposit} escrows from a deposit of 32");
    let after = client.balance(None).await.unwrap() + client.deposit_balance(None).await.unwrap();
    assert_eq!(before - after, price * ecld_types::U256::from(64u64), "each task cost its price");
    let ledger = client.ledger().await.unwrap();
    assert!(ledger.conserved(), "{ledger:?}");
}
