//! Crash safety: a CAS process killed with SIGKILL restarts with the same sessions, secrets and
//! identity, and a nonce used before the crash stays used.
//!
//! The CAS runs in a child process: this test binary re-executed to run only
//! [`cas_survives_kill_9`] with `ECLD_CAS_TEST_CHILD_DIR` set, which makes that run the CAS
//! server ([`serve_until_killed`]) instead of the test.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use ecld_cas::{CasClient, api::AttestRequest, client::open_response};
use ecld_crypto::AgeIdentity;
use ecld_tee::{EvidenceProvider, ReportData};

use crate::{config, sim_setup};

const CHILD_ENV: &str = "ECLD_CAS_TEST_CHILD_DIR";

/// The CAS server of the child process: serves the data directory `dir` until killed.
async fn serve_until_killed(dir: &str) {
    let cas = ecld_cas::spawn(config(Path::new(dir))).await.unwrap();
    println!("ECLD_CAS_URL={}", cas.url());
    cas.wait().await;
}

struct ChildCas {
    child: Child,
    url: String,
}

fn start_child(dir: &Path) -> ChildCas {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "persist::cas_survives_kill_9", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("child CAS exited before printing its URL").unwrap();
        // libtest prints `test … ... ` on the same line, before the child's output.
        if let Some((_, url)) = line.split_once("ECLD_CAS_URL=") {
            break url.trim().to_owned();
        }
    };
    ChildCas { child, url }
}

impl ChildCas {
    /// SIGKILL (on Unix): no shutdown code runs in the CAS.
    fn kill_9(self) {
        drop(self);
    }
}

impl Drop for ChildCas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn cas_survives_kill_9() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        // This process is the CAS a parent run of this test started and will kill.
        return serve_until_killed(&dir).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let (platform, policy) = sim_setup();

    let first = start_child(dir.path());
    let client = CasClient::new(&first.url).unwrap();
    let identity = client.identity().await.unwrap();
    let created = CasClient::new(&first.url)
        .unwrap()
        .with_admin_token(ecld_cas::AdminToken::new(crate::TOKEN))
        .create_session("stats@1", &policy)
        .await
        .unwrap();

    let nonce = client.nonce("stats@1").await.unwrap().nonce;
    let ephemeral = AgeIdentity::generate();
    let recipient = ephemeral.recipient().to_string();
    let req = AttestRequest {
        session: "stats@1".into(),
        nonce: nonce.clone(),
        ephemeral_recipient: recipient.clone(),
        evidence: platform
            .evidence(&ReportData::for_attestation("stats@1", &nonce, &recipient))
            .unwrap(),
    };
    let resp = client.attest_raw(&req).await.unwrap();
    let before = open_response(&req, &resp, &ephemeral, identity).unwrap();
    let unused_nonce = client.nonce("stats@1").await.unwrap().nonce;
    first.kill_9();

    let second = start_child(dir.path());
    let client = CasClient::new(&second.url).unwrap();
    assert_eq!(client.identity().await.unwrap(), identity, "the CAS identity persists");
    let shown = client.session("stats@1").await.unwrap();
    assert_eq!(shown, created, "the session and its public keys persist");

    let err = client.attest_raw(&req).await.unwrap_err();
    assert_eq!(err.code(), "nonce_replayed", "a nonce used before the crash stays used: {err}");

    // A nonce issued but not used before the crash is still good.
    let req2 = AttestRequest {
        nonce: unused_nonce.clone(),
        evidence: platform
            .evidence(&ReportData::for_attestation("stats@1", &unused_nonce, &recipient))
            .unwrap(),
        ..req.clone()
    };
    let resp = client.attest_raw(&req2).await.unwrap();
    let after = open_response(&req2, &resp, &ephemeral, identity).unwrap();
    assert_eq!(after.signer_address(), before.signer_address(), "the secrets persist");
    assert_eq!(after.recipient().to_string(), before.recipient().to_string());
    second.kill_9();

    // Secrets are not stored in the clear.
    for entry in std::fs::read_dir(dir.path().join("sessions")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains("AGE-SECRET-KEY"), "session file holds a plaintext secret");
    }
}
