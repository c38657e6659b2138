//! The whole scenario sequence on `hardhat node` and on ecld-devnet: same statuses, logs and
//! gas used, call by call.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use ecld_testkit::{peers, runs};

use crate::{devnet, harness::Env, scenarios};

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
    for (i, (h, d)) in on_hardhat.transcript.iter().zip(&on_devnet.transcript).enumerate() {
        assert_eq!(
            h, d,
            "call #{i} ({}) differs between hardhat (left) and ecld-devnet (right)",
            h.0
        );
    }
    eprintln!(
        "hardhat at {} and ecld-devnet agree on {} calls",
        hh.url,
        on_hardhat.transcript.len()
    );
}
