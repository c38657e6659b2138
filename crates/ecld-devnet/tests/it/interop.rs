//! Real clients nobody here wrote drive the devnet: Python `web3` and npm `ethers`
//! (`tools/web3_smoke.py`, `tools/ethers_smoke.mjs`). Each script deploys a contract, sends
//! signed EIP-1559 transactions, waits for receipts and reads logs; the test then checks the
//! chain state the script left with its own JSON-RPC calls.

use std::path::PathBuf;

use alloy::{
    primitives::{Address, Bytes, U256},
    sol_types::SolCall as _,
};
use serde_json::{Value, json};

use crate::common::{Counter, Rpc, big, devnet};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a peer; `None` (with a loud message) only when its interpreter or module is absent.
async fn run_peer(program: &str, probe: &[&str], args: &[String]) -> Option<Value> {
    let probe_ok = tokio::process::Command::new(program)
        .args(probe)
        .current_dir(root().join("tools"))
        .output()
        .await
        .map(|o| o.status.success());
    match probe_ok {
        Err(_) => {
            eprintln!(
                "SKIPPED: `{program}` is not installed; run scripts/setup to test against it"
            );
            return None;
        }
        Ok(false) => {
            eprintln!(
                "SKIPPED: `{program}` lacks the peer module ({probe:?} failed); run scripts/setup"
            );
            return None;
        }
        Ok(true) => {}
    }
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    Some(serde_json::from_str(&line).unwrap())
}

#[tokio::test]
async fn python_web3_deploys_calls_and_reads_logs() {
    let d = devnet().await;
    let args = vec![
        "tools/web3_smoke.py".into(),
        d.url(),
        d.private_keys()[0].clone(),
        "testdata/devnet".into(),
    ];
    let Some(report) = run_peer("python3", &["-c", "import web3, eth_account"], &args).await else {
        return;
    };
    assert!(report["client"].as_str().unwrap().starts_with("web3.py"));
    let rpc = Rpc::new(d.url());
    let counter: Address = report["counter"].as_str().unwrap().parse().unwrap();
    let count = rpc
        .call(
            "eth_call",
            json!([{"to": counter, "data": Bytes::from(Counter::countCall {}.abi_encode())}]),
        )
        .await;
    assert_eq!(big(&count), U256::from(12));
    assert_eq!(rpc.block_number().await, 4);
    let logs = rpc.call("eth_getLogs", json!([{"fromBlock": "0x0", "address": counter}])).await;
    assert_eq!(logs.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn npm_ethers_deploys_transfers_and_subscribes() {
    let d = devnet().await;
    if std::process::Command::new("node").arg("--version").output().is_err() {
        eprintln!("SKIPPED: `node` is not installed; run scripts/setup to test against ethers");
        return;
    }
    let args = vec![
        "tools/ethers_smoke.mjs".into(),
        d.url(),
        d.ws_url(),
        d.private_keys()[1].clone(),
        "testdata/devnet".into(),
    ];
    // Node is present, so the peer module must be too (scripts/setup installs it).
    let report = run_peer("node", &["-e", "require('ethers')"], &args)
        .await
        .expect("ethers is installed in tools/");
    assert!(report["client"].as_str().unwrap().starts_with("ethers 6"));
    let rpc = Rpc::new(d.url());
    let token: Address = report["token"].as_str().unwrap().parse().unwrap();
    let transfers = rpc.call("eth_getLogs", json!([{"fromBlock": "0x0", "address": token}])).await;
    assert_eq!(transfers.as_array().unwrap().len(), 2, "mint and one transfer");
    assert_eq!(rpc.block_number().await, 3);
}
