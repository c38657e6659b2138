//! The whole scenario sequence on `hardhat node` and on ecld-devnet, compared call by call:
//! the same logs and gas used for mined calls, gas estimates within hardhat's tolerance, and
//! for refused calls the same revert (by `eth_call` and `eth_estimateGas`) and the same
//! failed receipt (status and gas used) once sent anyway.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use ecld_testkit::{peers, runs};

use crate::{
    devnet,
    harness::{Env, Outcome, SendAnswer},
    scenarios,
};

/// A `hardhat node` child process on a free loopback port, killed on drop.
pub(crate) struct Hardhat {
    child: Child,
    pub(crate) url: String,
}

impl Drop for Hardhat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools")
}

/// Starts hardhat for `test`. Without Node.js or hardhat that test fails under CI and is a
/// recorded skip elsewhere (`None`).
pub(crate) async fn start(test: &str) -> Option<Hardhat> {
    let tools = tools_dir();
    let bin = tools.join("node_modules/hardhat/internal/cli/bootstrap.js");
    if !peers::NODE.available_for(test, runs("node", &["--version"]))
        || !peers::HARDHAT.available_for(test, bin.is_file())
    {
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("node")
        .arg(&bin)
        .args(["node", "--hostname", "127.0.0.1", "--port", &port.to_string()])
        .current_dir(&tools)
        .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hardhat node");
    let hh = Hardhat { child, url: format!("http://127.0.0.1:{port}") };
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []});
        if let Ok(r) = client.post(&hh.url).json(&body).send().await
            && r.status().is_success()
        {
            return Some(hh);
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "hardhat node did not start within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_and_hardhat_agree_on_every_call() {
    let (devnet, mut on_devnet) = devnet::start().await;
    scenarios::run_all(&mut on_devnet).await;
    assert!(on_devnet.transcript.len() > 100, "the sequence ran");
    eprintln!("gas used on ecld-devnet, by call:\n{}", gas_by_call(&on_devnet.transcript));
    devnet.shutdown().await.expect("shutdown");

    let Some(hh) =
        start("ecld-contracts::it hardhat::devnet_and_hardhat_agree_on_every_call").await
    else {
        return;
    };
    let mut on_hardhat = Env::new(&hh.url).await;
    assert_eq!(
        on_hardhat.deployment.marketplace, on_devnet.deployment.marketplace,
        "same addresses"
    );
    scenarios::run_all(&mut on_hardhat).await;
    assert_eq!(on_hardhat.transcript.len(), on_devnet.transcript.len());
    let mut above = Vec::new();
    for (i, (h, d)) in on_hardhat.transcript.iter().zip(&on_devnet.transcript).enumerate() {
        let what = format!("call #{i} ({})", h.0);
        assert_eq!(h.0, d.0, "{what}: the sequences diverged");
        if let Some(excess) = agree(&what, &h.1, &d.1) {
            above.push(excess);
        }
    }
    let (mined, refused) = (above.len(), on_devnet.transcript.len() - above.len());
    let differing = above.iter().filter(|e| **e > 0).count();
    eprintln!(
        "hardhat at {} and ecld-devnet agree on {} calls ({mined} mined, {refused} refused and \
         mined as failures); hardhat's gas estimate is above ecld-devnet's least gas for \
         {differing} calls, by at most {}",
        hh.url,
        on_hardhat.transcript.len(),
        above.iter().max().unwrap_or(&0)
    );
}

/// The gas used by the mined calls of a transcript, per label: least and most, and how many.
fn gas_by_call(transcript: &[(String, Outcome)]) -> String {
    let mut by = std::collections::BTreeMap::<&str, (u64, u64, usize)>::new();
    for (label, outcome) in transcript {
        if let Outcome::Mined { gas_used, .. } = outcome {
            let e = by.entry(label).or_insert((u64::MAX, 0, 0));
            *e = (e.0.min(*gas_used), e.1.max(*gas_used), e.2 + 1);
        }
    }
    by.iter()
        .map(|(label, (least, most, n))| format!("  {label}: {least}..={most} ({n} calls)"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How far above the least sufficient gas limit hardhat's `eth_estimateGas` may answer.
/// Hardhat (EDR) first tries the gas the call used, refunds deducted; where that is not
/// enough (a refund, the 1/64 of the gas a call keeps back), it bisects up from there and
/// stops once the window is at most this wide (EDR's `min_difference`, by the window's lower
/// end, which is at most the least gas). ecld-devnet bisects to the least gas itself, as geth
/// does.
fn hardhat_estimate_slack(least: u64) -> u64 {
    match least {
        4_000_000.. => 50_000,
        1_000_000.. => 10_000,
        100_000.. => 1_000,
        50_000.. => 500,
        30_000.. => 300,
        _ => 200,
    }
}

/// Asserts that hardhat's and ecld-devnet's answers to one call agree; for a mined call,
/// returns how far hardhat's gas estimate is above ecld-devnet's.
fn agree(what: &str, hardhat: &Outcome, devnet: &Outcome) -> Option<u64> {
    match (hardhat, devnet) {
        (
            Outcome::Mined {
                estimate: h_est,
                estimate_is_least: h_least,
                gas_used: h_gas,
                logs: h_logs,
            },
            Outcome::Mined {
                estimate: d_est,
                estimate_is_least: d_least,
                gas_used: d_gas,
                logs: d_logs,
            },
        ) => {
            assert_eq!(h_logs, d_logs, "{what}: logs differ (hardhat left)");
            assert_eq!(h_gas, d_gas, "{what}: gas used differs (hardhat left)");
            // The devnet's estimate sufficed (the transaction was mined with it as its limit);
            // one gas less must not.
            assert!(d_least, "{what}: ecld-devnet's estimate {d_est} is not the least gas");
            let slack = hardhat_estimate_slack(*d_est);
            assert!(
                h_est >= d_est && h_est - d_est <= slack,
                "{what}: hardhat estimates {h_est}, ecld-devnet {d_est} (least); hardhat may \
                 answer up to {slack} above the least"
            );
            assert!(!h_least || h_est == d_est, "{what}: both estimates least, yet different");
            Some(h_est - d_est)
        }
        (
            Outcome::Reverted { error: h_err, status: h_status, gas_used: h_gas, send: _ },
            Outcome::Reverted { error: d_err, status: d_status, gas_used: d_gas, send: d_send },
        ) => {
            assert_eq!(h_err, d_err, "{what}: refused with different errors (hardhat left)");
            assert_eq!(h_status, d_status, "{what}: mined failures' statuses differ");
            assert_eq!(h_gas, d_gas, "{what}: mined failures' gas used differs (hardhat left)");
            // Hardhat answers a transaction it mined and that failed with an error carrying
            // its hash (its `throwOnTransactionFailures`, on by default); ecld-devnet answers
            // with the hash, as geth does, and clients look at the receipt.
            assert_eq!(*d_send, SendAnswer::Hash, "{what}: ecld-devnet refused a mined send");
            None
        }
        _ => panic!("{what}: hardhat {hardhat:?}, ecld-devnet {devnet:?}"),
    }
}
