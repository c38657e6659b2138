//! Adversarial scenarios not covered elsewhere (see `docs/threat-model.md` for the map of
//! threats to tests): a node that tries to redirect the result to itself, and secrets that
//! must never reach any service's log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::{path::PathBuf, time::Duration};

use ecld_crypto::{AgeIdentity, Payload, ProofDomain, ProofSignature, SignerKey, envelope};
use ecld_enclave::{
    attest::{DangerLocalSecrets, ImageSecrets},
    client::{EnclaveProcess, Task},
    protocol::{Limits, TaskBinding},
};
use ecld_types::{Address, B256, ImageId, StatusCode, TaskId, content_hash};

use crate::e2e_stack::{Stack, contains, files_under};

const MARKET: Address = Address::repeat_byte(0x22);

fn domain() -> ProofDomain {
    ProofDomain { chain_id: 31337, verifying_contract: MARKET }
}

/// An image run from a local secrets file (the keys a CAS would provision), and its public
/// halves as the ImageRegistry publishes them.
struct Image {
    _dir: tempfile::TempDir,
    secrets_file: PathBuf,
    public_recipient: ecld_crypto::AgeRecipient,
    signer: Address,
}

impl Image {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secrets =
            ImageSecrets { identity: AgeIdentity::generate(), signer: SignerKey::generate() };
        let secrets_file = dir.path().join("secrets.json");
        std::fs::write(&secrets_file, DangerLocalSecrets::file_contents(&secrets).as_bytes())
            .unwrap();
        Self {
            public_recipient: secrets.identity.recipient(),
            signer: secrets.signer.address(),
            secrets_file,
            _dir: dir,
        }
    }

    async fn spawn(&self) -> EnclaveProcess {
        let module = crate::e2e_stack::repo_root().join("testdata/enclave/echo.wasm");
        let args = vec![
            "enclave".to_owned(),
            "--module".into(),
            module.display().to_string(),
            "--danger-secrets-file".into(),
            self.secrets_file.display().to_string(),
        ];
        EnclaveProcess::spawn(env!("CARGO_BIN_EXE_ecld"), args).await.unwrap()
    }

    /// The requester's ciphertext: a payload naming `recipient`, encrypted to the image.
    fn encrypt(&self, recipient: &ecld_crypto::AgeRecipient, input: &[u8]) -> Vec<u8> {
        let payload =
            Payload::new(Address::repeat_byte(7), recipient, None, input.to_vec()).unwrap();
        envelope::encrypt_bytes(
            std::slice::from_ref(&self.public_recipient),
            false,
            &payload.encode(),
        )
        .unwrap()
    }
}

/// The task as the node learns it from `TaskSubmitted`: the input hash is the requester's.
fn task(on_chain_input_hash: B256, input: Vec<u8>) -> Task {
    Task {
        binding: TaskBinding {
            task_id: TaskId::new(9).unwrap(),
            image_id: ImageId(B256::repeat_byte(0x11)),
            input_hash: on_chain_input_hash,
            chain_id: 31337,
            marketplace: MARKET,
        },
        limits: Limits {
            time_ms: 2_000,
            memory_bytes: 8 << 20,
            output_bytes: 64 << 10,
            fuel: None,
        },
        input,
    }
}

/// The recipient of the result travels inside the encrypted payload. A node that wants the
/// result for itself can neither read the payload (it lacks the image key) nor replace it:
/// a payload it re-encrypts to the image's public key, or any byte it changes, breaks the
/// input hash the requester put on chain, so the enclave signs status 16 (refund) and
/// encrypts nothing; and a proof bound to the node's own input hash does not verify for the
/// task's real one.
#[tokio::test]
async fn a_node_cannot_redirect_the_result_to_another_recipient() {
    let image = Image::new();
    let mut enclave = image.spawn().await;
    let requester = AgeIdentity::generate();
    let node = AgeIdentity::generate();
    let original = image.encrypt(&requester.recipient(), b"the requester's secret input");
    let on_chain = content_hash(&original);

    // 1. The node cannot open the requester's payload.
    assert!(envelope::decrypt_bytes(&node, &original).is_err());

    // 2. A payload re-encrypted by the node with its own recipient fails the input hash.
    let forged = image.encrypt(&node.recipient(), b"the requester's secret input");
    let outcome = enclave.run(task(on_chain, forged.clone())).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::InputUnavailable);
    assert!(outcome.result.is_empty(), "nothing may be encrypted to the node");
    let sig = ProofSignature::from_slice(&outcome.signature).unwrap();
    outcome.proof.to_proof().verify(&domain(), &sig, image.signer).unwrap();
    assert!(outcome.proof.to_proof().status.code() >= 16, "status 16 refunds the requester");

    // 3. A node-modified ciphertext (one flipped byte) fails the input hash the same way.
    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let outcome = enclave.run(task(on_chain, flipped)).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::InputUnavailable);
    assert!(outcome.result.is_empty());

    // 4. Binding the task to the forged ciphertext's own hash gets the node a result for
    //    itself, but the proof names that hash: rebuilt with the hash on chain (what the
    //    contract and the SDK do), it recovers to another signer.
    let outcome = enclave.run(task(content_hash(&forged), forged)).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::Success);
    let mut as_checked = outcome.proof.to_proof();
    as_checked.input_hash = on_chain;
    let sig = ProofSignature::from_slice(&outcome.signature).unwrap();
    let err = as_checked.verify(&domain(), &sig, image.signer).unwrap_err();
    assert!(matches!(err, ecld_crypto::ProofError::WrongSigner { .. }), "{err}");

    // The honest run still works on the same enclave.
    let outcome = enclave.run(task(on_chain, original)).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::Success);
    assert!(envelope::decrypt_bytes(&requester, &outcome.result).is_ok());
    assert!(envelope::decrypt_bytes(&node, &outcome.result).is_err());
}

/// Secrets a stack holds: every non-comment line of the key and token files `ecld up`
/// wrote (user, publisher and node Ethereum keys, the user's age identity, the CAS admin
/// token, the node's sim platform key).
fn secrets_of(stack: &Stack) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let data = stack.dir.path();
    for file in files_under(&data.join("keys")).into_iter().chain(files_under(&data.join("node"))) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".key") || name.ends_with(".token") || name.ends_with("age-key")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') || line.starts_with("age1") || line.len() < 16 {
                continue;
            }
            let bare = line.strip_prefix("0x").unwrap_or(line);
            out.push((file.clone(), bare.to_owned()));
        }
    }
    out
}

/// With every service logging at `trace` (chain, store, CAS, node and its enclaves all write
/// to one stderr), a private task's plaintext input, its plaintext result and every key of
/// the stack stay out of the log and out of the CLI's own trace output.
#[test]
fn no_secret_reaches_any_log_at_trace_level() {
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("stack.log");
    let stack = Stack::start_logging(tempfile::tempdir().unwrap(), "trace", &log);
    let secret = format!("log-leak-marker-{:016x} alpha beta gamma", std::process::id());
    let input = log_dir.path().join("input.txt");
    std::fs::write(&input, format!("{secret}\n")).unwrap();

    let mut cmd = stack.cmd();
    cmd.env("RUST_LOG", "trace");
    let out = cmd.args(["task", "run", "stats", "--input"]).arg(&input).output().unwrap();
    assert!(out.status.success(), "task run failed: {}", String::from_utf8_lossy(&out.stderr));
    let result = out.stdout.trim_ascii().to_vec();
    assert!(result.len() >= 8, "the result is too short to search for: {result:?}");
    let keys = secrets_of(&stack);
    assert!(keys.len() >= 5, "found only {} key files' secrets: {keys:?}", keys.len());
    // Let the node log its settlement steps, then stop everything so the log is complete.
    std::thread::sleep(Duration::from_millis(500));
    drop(stack.stop());

    let logged = std::fs::read(&log).unwrap();
    assert!(logged.len() > 10_000, "only {} bytes logged at trace level?", logged.len());
    for target in ["ecld_devnet", "ecld_store", "ecld_cas", "ecld_node", "ecld_enclave"] {
        assert!(contains(&logged, target.as_bytes()), "no log line of {target}: not scanned");
    }
    let mut needles = vec![
        ("the plaintext input".to_owned(), secret.into_bytes()),
        ("the plaintext result".to_owned(), result),
        ("an age secret key".to_owned(), b"AGE-SECRET-KEY-1".to_vec()),
    ];
    for (file, key) in keys {
        needles.push((format!("the secret of {}", file.display()), key.clone().into_bytes()));
        // Keys in hex may be logged in either case.
        needles.push((
            format!("the secret of {} (upper)", file.display()),
            key.to_uppercase().into_bytes(),
        ));
    }
    for (what, needle) in &needles {
        assert!(!contains(&logged, needle), "{what} found in the services' log");
        assert!(!contains(&out.stderr, needle), "{what} found in the CLI's log");
    }
}

/// POSTs `body` to `path` over plain HTTP/1.1 and returns the status and the body.
pub(crate) fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body); // The server may answer (and close) before reading it all.
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (code, body)
}

/// Every file under `dir` with its contents, to show a request changed nothing.
fn snapshot(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> =
        files_under(dir).into_iter().map(|f| (f.clone(), std::fs::read(&f).unwrap())).collect();
    files.sort();
    files
}

/// Malformed requests to the store's Kubo API and to the CAS each get a specific 4xx error
/// naming the problem, and leave the service's state exactly as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_store_and_cas_requests_get_specific_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ecld_store::spawn(ecld_store::StoreConfig::ephemeral(dir.path().join("store")))
        .await
        .unwrap();
    let cas = ecld_cas::spawn(ecld_cas::CasConfig::new(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        dir.path().join("cas"),
        ecld_cas::AdminToken::new("admin-token-for-this-test"),
    ))
    .await
    .unwrap();
    let (s, c) = (store.addr(), cas.addr());
    let before = (snapshot(&dir.path().join("store")), snapshot(&dir.path().join("cas")));

    let long_cid = format!("/api/v0/block/get?arg={}", "b".repeat(300));
    let json = "Content-Type: application/json\r\n";
    let auth =
        "Content-Type: application/json\r\nAuthorization: Bearer admin-token-for-this-test\r\n";
    let multipart = "Content-Type: multipart/form-data; boundary=XyZ\r\n";
    // (service, path, headers, what, body, expected error code)
    type Case<'a> = (std::net::SocketAddr, &'a str, &'a str, &'a str, Vec<u8>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (s, "/api/v0/add", json, "no multipart", b"{}".to_vec(), ""),
        (
            s,
            "/api/v0/add",
            multipart,
            "truncated multipart",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nhel".to_vec(),
            "",
        ),
        (s, "/api/v0/cat?arg=bafy-not-base32!", "", "bad CID", Vec::new(), ""),
        (s, &long_cid, "", "oversized CID", Vec::new(), ""),
        (c, "/v1/nonce", json, "not JSON", b"{not json".to_vec(), "invalid_request"),
        (
            c,
            "/v1/nonce",
            json,
            "unknown field",
            br#"{"session":"a","extra":1}"#.to_vec(),
            "invalid_request",
        ),
        (
            c,
            "/v1/attest",
            json,
            "attest without evidence",
            br#"{"session":"a","nonce":"b","ephemeral_recipient":"age1x"}"#.to_vec(),
            "invalid_request",
        ),
        (
            c,
            "/v1/sessions",
            json,
            "create without token",
            br#"{"name":"x","policy":{}}"#.to_vec(),
            "unauthorized",
        ),
        (
            c,
            "/v1/sessions",
            auth,
            "create with a broken policy",
            br#"{"name":"x","policy":{"danger_allow_sim":"yes"}}"#.to_vec(),
            "",
        ),
    ];
    for (addr, path, headers, what, body, code) in cases {
        let (status, answer) = http(addr, "POST", path, headers, &body);
        eprintln!("{what}: {status} {answer}");
        assert!((400..500).contains(&status), "{what}: HTTP {status} {answer}");
        assert!(!answer.trim().is_empty(), "{what}: an error without a message");
        assert!(answer.contains(code), "{what}: expected code {code:?} in {answer}");
    }
    let (status, answer) = http(c, "GET", "/v1/sessions/x", "", b"");
    assert_eq!(status, 404, "{answer}");
    let after = (snapshot(&dir.path().join("store")), snapshot(&dir.path().join("cas")));
    let changed = |a: &[(PathBuf, Vec<u8>)], b: &[(PathBuf, Vec<u8>)]| -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> =
            a.iter().filter(|f| !b.contains(f)).map(|f| f.0.clone()).collect();
        out.extend(b.iter().filter(|f| !a.contains(f)).map(|f| f.0.clone()));
        out
    };
    // A refused upload leaves the blocks that arrived before the error (here the empty leaf
    // of a truncated part) unpinned, for garbage collection; pins and everything else are
    // untouched. (Recorded in docs/threat-model.md.)
    let store_dir = dir.path().join("store");
    for f in changed(&before.0, &after.0) {
        assert!(
            f.starts_with(store_dir.join("blocks")),
            "a refused request changed {}",
            f.display()
        );
        assert_eq!(std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0), 0, "{}", f.display());
    }
    assert!(
        after.1 == before.1,
        "a refused request changed the CAS's files: {:?}",
        changed(&before.1, &after.1)
    );
    // An upload with no file part is answered with nothing (no entry, no error).
    let (status, answer) = http(s, "POST", "/api/v0/add", multipart, b"--XyZ--\r\n");
    assert_eq!((status, answer.trim()), (200, ""), "an add without a file");
    store.shutdown().await.unwrap();
    cas.shutdown().await;
}

/// Sends `signal` (`STOP`, `CONT`) to `pid`.
fn signal(pid: u64, signal: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid} failed");
}

/// Sends SIGCONT on drop.
struct Resume(u64);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg("-CONT").arg(self.0.to_string()).status();
    }
}

/// A node whose offer a task was matched to goes silent (SIGSTOP) and never runs it. The
/// requester cannot take the price back before the deadline, gets all of it back after,
/// the Marketplace's books balance, and when the node wakes up its late work settles
/// nothing and it goes on serving new tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_is_reclaimed_after_the_deadline_and_tokens_are_conserved() {
    use ecld_sdk::{Client, ClientConfig, TaskRequest, TaskState};

    let stack = Stack::start();
    let c = Client::connect(&ClientConfig::load(&stack.config()).unwrap()).await.unwrap();
    let stats = c.resolve_image("stats").await.unwrap();
    let node = stack.info["node"]["pid"].as_u64().expect("`ecld up` reports the node's pid");
    let rpc: std::net::SocketAddr = stack.info["rpc"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let before = c.balance(None).await.unwrap();

    signal(node, "STOP");
    // Wake the node even if an assertion fails, or stopping the stack would hang.
    let _resume = Resume(node);
    let mut req = TaskRequest::new(stats.id, b"silent node test\n".to_vec());
    req.deadline = Duration::from_secs(120);
    let task = c.submit(&req).await.unwrap().task;
    assert!(matches!(c.task(task).await.unwrap().state, TaskState::Matched { .. }));
    assert!(c.balance(None).await.unwrap() < before, "the price is escrowed");

    let err = c.reclaim(task).await.unwrap_err();
    assert!(err.to_string().contains("has not passed"), "reclaim before the deadline: {err}");

    let json = "Content-Type: application/json\r\n";
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"evm_increaseTime","params":[300]}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"evm_mine","params":[]}"#,
    ] {
        let (status, answer) = http(rpc, "POST", "/", json, body.as_bytes());
        assert!(status == 200 && !answer.contains("\"error\""), "{body}: {answer}");
    }
    c.reclaim(task).await.unwrap();
    assert_eq!(c.task(task).await.unwrap().state, TaskState::Reclaimed);
    assert_eq!(c.balance(None).await.unwrap(), before, "the requester got the whole price back");
    let ledger = c.ledger().await.unwrap();
    assert!(ledger.conserved(), "escrowed ≠ paid + refunded + held: {ledger:?}");
    assert_eq!(ledger.held, ledger.balance, "the Marketplace holds exactly what is held");

    // The node wakes up: the task it was matched to is gone, and it still serves new work.
    signal(node, "CONT");
    let r = c
        .run(
            &TaskRequest::new(stats.id, b"after the pause\n".to_vec()),
            Duration::from_secs(90),
            |_, _| (),
        )
        .await
        .unwrap();
    assert!(r.output.is_some(), "the woken node ran a new task");
    assert_eq!(c.task(task).await.unwrap().state, TaskState::Reclaimed);
    assert!(c.ledger().await.unwrap().conserved());
}
