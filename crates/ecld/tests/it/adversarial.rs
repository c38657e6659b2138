//! Adversarial scenarios not covered elsewhere (see `docs/threat-model.md` for the map of
//! threats to tests): a node that tries to redirect the result to itself, and secrets that
//! must never reach any service's log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::{path::PathBuf, time::Duration};

use ecld_crypto::{AgeIdentity, Payload, ProofDomain, ProofSignature, SignerKey, envelope};
use ecld_enclave::{
    attest::{DangerLocalSecrets, ImageSecrets},
    client::{EnclaveProcess, Task},
    protocol::TaskBinding,
};
use ecld_types::{Address, B256, ImageId, StatusCode, TaskId, content_hash};

use crate::e2e_stack::{
    Stack, files_under,
    log_scan::{self, Secret, found_in},
};

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
        self.spawn_module("echo.wasm").await
    }

    /// An enclave of this image running `testdata/enclave/<module>`.
    async fn spawn_module(&self, module: &str) -> EnclaveProcess {
        let module = crate::e2e_stack::repo_root().join("testdata/enclave").join(module);
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

/// keccak256 of the CID the store gives `bytes`, as a spec commits to it.
fn cid_hash(bytes: &[u8]) -> B256 {
    ecld_enclave::enclave::cid_hash(bytes)
}

/// The task as the node learns it from `TaskSubmitted`: the requester committed to the hash
/// and CID of `committed`; the node sends `input`. 8 MiB of memory, 2 s of run time.
fn task(committed: &[u8], input: Vec<u8>) -> Task {
    Task {
        binding: TaskBinding {
            task_id: TaskId::new(9).unwrap(),
            image_id: ImageId(B256::repeat_byte(0x11)),
            input_hash: content_hash(committed),
            input_cid_hash: cid_hash(committed),
            memory_mb: 8,
            max_runtime_s: 2,
            deadline: 1_900_000_000,
            chain_id: 31337,
            marketplace: MARKET,
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

    // 1. The node cannot open the requester's payload.
    assert!(envelope::decrypt_bytes(&node, &original).is_err());

    // 2. A payload re-encrypted by the node with its own recipient fails the input hash.
    let forged = image.encrypt(&node.recipient(), b"the requester's secret input");
    let outcome = enclave.run(task(&original, forged.clone())).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::InputUnavailable);
    assert!(outcome.result.is_empty(), "nothing may be encrypted to the node");
    let sig = ProofSignature::from_slice(&outcome.signature).unwrap();
    outcome.proof.to_proof().verify(&domain(), &sig, image.signer).unwrap();
    assert!(outcome.proof.to_proof().status.code() >= 16, "status 16 refunds the requester");

    // 3. A node-modified ciphertext (one flipped byte) fails the input hash the same way.
    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let outcome = enclave.run(task(&original, flipped)).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::InputUnavailable);
    assert!(outcome.result.is_empty());

    // 4. Binding the task to the forged ciphertext's own hash gets the node a result for
    //    itself, but the proof names that hash: rebuilt with the hash on chain (what the
    //    contract and the SDK do), it recovers to another signer.
    let outcome = enclave.run(task(&forged, forged.clone())).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::Success);
    let mut as_checked = outcome.proof.to_proof();
    as_checked.input_hash = content_hash(&original);
    as_checked.input_cid_hash = cid_hash(&original);
    let sig = ProofSignature::from_slice(&outcome.signature).unwrap();
    let err = as_checked.verify(&domain(), &sig, image.signer).unwrap_err();
    assert!(matches!(err, ecld_crypto::ProofError::WrongSigner { .. }), "{err}");

    // The honest run still works on the same enclave.
    let outcome = enclave.run(task(&original, original.clone())).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::Success);
    assert!(envelope::decrypt_bytes(&requester, &outcome.result).is_ok());
    assert!(envelope::decrypt_bytes(&node, &outcome.result).is_err());
}

/// The limits that decide a paid status are the requester's. A node that binds the task to
/// limits of its own (here: no run time at all, so the program runs out of fuel at once and
/// the enclave signs TIMEOUT, which pays) gets a proof over *its* spec; rebuilt with the
/// requester's spec, as the contract and the SDK rebuild it, the proof recovers to another
/// signer. And the frame has no place for limits: an old-style `limits` field is refused.
#[tokio::test]
async fn a_node_that_picks_the_limits_gets_a_proof_for_another_spec() {
    let image = Image::new();
    let mut enclave = image.spawn().await;
    let requester = AgeIdentity::generate();
    let input = image.encrypt(&requester.recipient(), b"limits are the requester's");
    let honest = task(&input, input.clone());

    for (what, patched) in [
        ("no run time (fuel 0)", TaskBinding { max_runtime_s: 0, ..honest.binding }),
        ("no memory", TaskBinding { memory_mb: 0, ..honest.binding }),
    ] {
        let outcome = enclave.run(Task { binding: patched, input: input.clone() }).await.unwrap();
        assert!(
            matches!(outcome.proof.status, StatusCode::Timeout | StatusCode::ResourceLimit),
            "{what}: the patched limits must bite: {:?}",
            outcome.proof.status
        );
        // The enclave signed the limits it ran under ...
        let signed = outcome.proof.to_proof();
        assert_eq!(
            (signed.max_runtime_s, signed.memory_mb),
            (patched.max_runtime_s, patched.memory_mb)
        );
        let sig = ProofSignature::from_slice(&outcome.signature).unwrap();
        signed.verify(&domain(), &sig, image.signer).unwrap();
        // ... so the proof is worthless for the requester's spec.
        let as_checked = ecld_crypto::ResultProof {
            max_runtime_s: honest.binding.max_runtime_s,
            memory_mb: honest.binding.memory_mb,
            ..signed
        };
        let err = as_checked.verify(&domain(), &sig, image.signer).unwrap_err();
        assert!(matches!(err, ecld_crypto::ProofError::WrongSigner { .. }), "{what}: {err}");
    }

    // Under the requester's limits the same program succeeds.
    let outcome = enclave.run(honest).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::Success);
}

/// A node that starves its enclave — here it stops every thread of the enclave but the one
/// that keeps its wall clock, with ptrace, the way a modified host stops a vCPU — cannot
/// turn the stall into a paid TIMEOUT: the program still had fuel, so the enclave signs
/// STALLED (19), which refunds the requester. Stopping the whole process (SIGSTOP) stops
/// the clock too and changes nothing: the program's fuel runs out exactly where it would
/// have, and the paid TIMEOUT it signs is the requester's program's own doing.
#[tokio::test]
async fn a_starved_or_paused_enclave_never_earns_a_paid_timeout() {
    let image = Image::new();
    let requester = AgeIdentity::generate();
    let input = image.encrypt(&requester.recipient(), b"spin");
    // `spin` loops forever: 5 s of run time is 2.5 G fuel, seconds of spinning on any
    // machine, more on a loaded one (the starving starts 20 ms into the run), and used up in
    // well under the 30 s wall-clock allowance when the enclave runs.
    let binding = TaskBinding { max_runtime_s: 5, ..task(&input, Vec::new()).binding };

    let mut enclave = image.spawn_module("spin.wasm").await;
    let pid = enclave.pid().expect("the enclave's pid");
    let allowance = Duration::from_millis(ecld_enclave::protocol::wall_clock_allowance_ms(5));
    let starver = Starver::spawn(pid, allowance + Duration::from_secs(1));
    let run = tokio::spawn(async move {
        let outcome = enclave.run(Task { binding, input: input.clone() }).await.unwrap();
        (enclave, input, outcome)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    tokio::task::spawn_blocking(move || starver.go()).await.unwrap();
    let (mut enclave, input, outcome) = run.await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::Stalled, "{}", outcome.message);
    assert!(outcome.proof.status.code() >= StatusCode::FIRST_SYSTEM_CODE, "STALLED refunds");
    let sig = ProofSignature::from_slice(&outcome.signature).unwrap();
    outcome.proof.to_proof().verify(&domain(), &sig, image.signer).unwrap();

    // The whole process stopped for longer than the allowance: the same, deterministic
    // outcome as an undisturbed run (fuel used up: TIMEOUT).
    let run = tokio::spawn(async move { enclave.run(Task { binding, input }).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    signal(u64::from(pid), "STOP");
    let resume = Resume(u64::from(pid));
    tokio::time::sleep(allowance + Duration::from_secs(1)).await;
    drop(resume);
    let outcome = run.await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::Timeout, "{}", outcome.message);
}

/// A host that stops every thread of `pid` except its wall clock (`ecld-epoch`) for a
/// while, with ptrace (`starve.py` beside this file: a tracer may stop single threads,
/// signals stop whole processes). Loaded first, so that it acts the moment it is told to.
struct Starver(std::process::Child);

impl Starver {
    fn spawn(pid: u32, pause: Duration) -> Self {
        let script = crate::e2e_stack::repo_root().join("crates/ecld/tests/it/starve.py");
        let child = std::process::Command::new("python3")
            .arg(script)
            .arg(pid.to_string())
            .arg(format!("{:.3}", pause.as_secs_f64()))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 (needed to stop an enclave's threads with ptrace)");
        Self(child)
    }

    /// Stops the threads now, for the pause; returns when they run again.
    fn go(mut self) {
        let mut stdin = self.0.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, b"go\n").unwrap();
        drop(stdin);
        let out = self.0.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "starve.py failed: {stderr}");
        let stopped: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(stopped >= 1, "no thread of the enclave was stopped");
    }
}

/// With every service logging at `trace` (chain, store, CAS, node and its enclaves all write
/// to one stderr), a private task's plaintext input, its plaintext result and every key of
/// the stack (user, publisher and node accounts, the user's age identity, the CAS admin token
/// and master key, the node's sim platform key, and each image's age identity and proof
/// signer as the CAS provisions them) stay out of the log, out of the CLI's own trace output,
/// and out of the errors a failing `ecld task run` prints (store unreachable, a reverted
/// submission, no result in time, an unreadable identity file).
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
    let keys = log_scan::stack_secrets(stack.dir.path(), &stack.info);
    let published = stack.info["images"].as_array().unwrap().len();
    assert!(keys.len() >= 8 + 2 * published, "{} secrets for {published} images", keys.len());

    // Runs that fail after the input was read, each at trace level.
    let bad_identity = log_dir.path().join("broken.age-key");
    std::fs::write(&bad_identity, "AGE-SECRET-KEY-1NOTAKEYNOTAKEYNOTAKEY\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bad_identity, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let input_arg = input.display().to_string();
    let run = ["task", "run", "stats", "--input", &input_arg];
    let bad_key = bad_identity.display().to_string();
    // (what, arguments, environment, the error printed)
    type Failing<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, String)>, String);
    let failing: Vec<Failing<'_>> = vec![
        (
            "store unreachable",
            run.to_vec(),
            vec![("ECLD_STORE", "http://127.0.0.1:9".to_owned())],
            "error: the store at http://127.0.0.1:9 failed (request to store at \
             http://127.0.0.1:9/api/v0/add failed"
                .to_owned(),
        ),
        (
            "unknown offer",
            [&run[..], &["--offer", "999999"]].concat(),
            vec![],
            "error: the submitTask transaction was rejected: offer 999999 does not exist or was \
             withdrawn; see `ecld offers list`"
                .to_owned(),
        ),
        (
            "no result in time",
            [&run[..], &["--offer", "0", "--price", "1", "--timeout-s", "1"]].concat(),
            vec![],
            "is still open (waiting for a node) after".to_owned(),
        ),
        (
            "unreadable identity",
            run.to_vec(),
            vec![("ECLD_IDENTITY", bad_key.clone())],
            format!(
                "error: cannot load the key {bad_key}: {bad_key} is not a valid age identity \
                 file: invalid Bech32 encoding"
            ),
        ),
    ];
    let mut errors = Vec::new();
    for (what, args, env, expected) in failing {
        let mut cmd = stack.cmd();
        cmd.env("RUST_LOG", "trace").args(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let failed = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&failed.stderr).into_owned();
        assert_eq!(failed.status.code(), Some(1), "{what}: {text}");
        assert!(text.contains(&expected), "{what}: no `{expected}` in {text}");
        errors.push((what, failed));
    }
    // Let the node log its settlement steps, then stop everything so the log is complete (and
    // scanned for every secret of the stack, this task's input and result among them).
    std::thread::sleep(Duration::from_millis(500));
    drop(stack.stop());

    let logged = std::fs::read(&log).unwrap();
    assert!(logged.len() > 10_000, "only {} bytes logged at trace level?", logged.len());
    // Every service wrote to the log (and the one-pass search finds what is there).
    let targets: Vec<(String, Vec<u8>)> =
        ["ecld_devnet", "ecld_store", "ecld_cas", "ecld_node", "ecld_enclave"]
            .iter()
            .map(|t| ((*t).to_owned(), t.as_bytes().to_vec()))
            .collect();
    let seen = found_in(&logged, &targets);
    assert_eq!(seen.len(), targets.len(), "only {seen:?} logged: the others were not scanned");
    let mut secrets = keys;
    secrets.push(Secret::bytes("the plaintext input", secret.into_bytes()));
    secrets.push(Secret::bytes("the plaintext result", result));
    secrets.push(Secret::bytes("an age secret key", b"AGE-SECRET-KEY-1".to_vec()));
    let needles = log_scan::needles(&secrets);
    let found = found_in(&out.stderr, &needles);
    assert!(found.is_empty(), "found in the CLI's log: {found:?}");
    for (run, failed) in &errors {
        let found = found_in(&failed.stderr, &needles);
        assert!(found.is_empty(), "found in the error of `{run}`: {found:?}");
        let found = found_in(&failed.stdout, &needles);
        assert!(found.is_empty(), "found in the output of `{run}`: {found:?}");
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

/// Malformed requests to the store's Kubo API and to the CAS each get the exact HTTP status
/// and error (Kubo's `{"Message","Code":1,"Type":"error"}` from the store, the CAS's
/// `{"error":{"code",…}}`), and leave the service's state exactly as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_store_and_cas_requests_get_specific_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store_config = ecld_store::StoreConfig::ephemeral(dir.path().join("store"));
    store_config.max_upload_bytes = 64 * 1024;
    let store = ecld_store::spawn(store_config).await.unwrap();
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
    let oversized = [
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".to_vec(),
        vec![b'x'; 100 * 1024],
        b"\r\n--XyZ--\r\n".to_vec(),
    ]
    .concat();
    let kubo = |message: &str| format!(r#"{{"Message":"{message}","Code":1,"Type":"error"}}"#);
    let cas_error = |code: &str, message: &str| {
        format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#)
    };
    // (service, path, headers, what, body, expected HTTP status, expected body)
    type Case<'a> = (std::net::SocketAddr, &'a str, &'a str, &'a str, Vec<u8>, u16, String);
    let cases: Vec<Case<'_>> = vec![
        (
            s,
            "/api/v0/add",
            json,
            "no multipart",
            b"{}".to_vec(),
            400,
            "Invalid `boundary` for `multipart/form-data` request".to_owned(),
        ),
        (
            s,
            "/api/v0/add",
            multipart,
            "truncated multipart",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nhel".to_vec(),
            400,
            kubo(r#"malformed multipart upload: field \"file\" received with incomplete data"#),
        ),
        (
            s,
            "/api/v0/add",
            multipart,
            "upload over max_upload_bytes",
            oversized,
            413,
            kubo("content is larger than the limit of 65536 bytes")
                .replace("\"Code\":1", "\"Code\":0"),
        ),
        (
            s,
            "/api/v0/cat?arg=bafy-not-base32!",
            "",
            "bad CID",
            Vec::new(),
            400,
            kubo(
                r#"invalid CID \"bafy-not-base32!\": Failed to parse multihash; expected a CID such as bafkrei… or Qm…"#,
            ),
        ),
        (
            s,
            &long_cid,
            "",
            "oversized CID",
            Vec::new(),
            400,
            kubo(&format!(
                r#"invalid CID \"{}\": too long; expected a CID such as bafkrei… or Qm…"#,
                "b".repeat(120)
            )),
        ),
        (
            c,
            "/v1/nonce",
            json,
            "not JSON",
            b"{not json".to_vec(),
            400,
            cas_error(
                "invalid_request",
                "invalid request: body: key must be a string at line 1 column 2",
            ),
        ),
        (
            c,
            "/v1/nonce",
            json,
            "unknown field",
            br#"{"session":"a","extra":1}"#.to_vec(),
            400,
            cas_error(
                "invalid_request",
                "invalid request: body: unknown field `extra`, expected `session` at line 1 column 22",
            ),
        ),
        (
            c,
            "/v1/attest",
            json,
            "attest without evidence",
            br#"{"session":"a","nonce":"b","ephemeral_recipient":"age1x"}"#.to_vec(),
            400,
            cas_error(
                "invalid_request",
                "invalid request: body: missing field `evidence` at line 1 column 57",
            ),
        ),
        (
            c,
            "/v1/sessions",
            json,
            "create without token",
            br#"{"name":"x","policy":{}}"#.to_vec(),
            401,
            cas_error(
                "unauthorized",
                "admin endpoint: missing or wrong bearer token (send `Authorization: Bearer <admin token>`)",
            ),
        ),
        (
            c,
            "/v1/sessions",
            auth,
            "create with a broken policy",
            br#"{"name":"x","policy":{"danger_allow_sim":"yes"}}"#.to_vec(),
            400,
            cas_error(
                "invalid_request",
                r#"invalid request: body: invalid type: string \"yes\", expected a boolean at line 1 column 46"#,
            ),
        ),
    ];
    let mut huge = br#"{"session":""#.to_vec();
    huge.extend(vec![b'a'; 3 << 20]);
    huge.extend(br#""}"#);
    let cases = [
        cases,
        vec![(
            c,
            "/v1/nonce",
            json,
            "body over the CAS's limit",
            huge,
            413,
            "Failed to buffer the request body: length limit exceeded".to_owned(),
        )],
    ]
    .concat();
    for (addr, path, headers, what, body, code, expected) in cases {
        let (status, answer) = http(addr, "POST", path, headers, &body);
        assert_eq!((status, answer.trim()), (code, expected.as_str()), "{what}");
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
    // A refused upload leaves the blocks that arrived before the error (the empty leaf of a
    // truncated part, the first 64 KiB of an oversized one) unpinned; nothing else changes,
    // and garbage collection brings the store back to exactly its state before.
    // (Recorded in docs/threat-model.md.)
    let store_dir = dir.path().join("store");
    let orphans = changed(&before.0, &after.0);
    for f in &orphans {
        assert!(
            f.starts_with(store_dir.join("blocks")),
            "a refused request changed {}",
            f.display()
        );
    }
    let (status, answer) = http(s, "POST", "/api/v0/repo/gc", "", b"");
    assert_eq!(status, 200, "{answer}");
    let collected = snapshot(&store_dir);
    assert!(
        collected == before.0,
        "after gc the store still differs: {:?} (orphans were {orphans:?})",
        changed(&before.0, &collected)
    );
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

/// A JSON-RPC call over plain HTTP: the decoded answer.
fn rpc(addr: std::net::SocketAddr, body: &str) -> serde_json::Value {
    let (status, answer) =
        http(addr, "POST", "/", "Content-Type: application/json\r\n", body.as_bytes());
    assert_eq!(status, 200, "{body}: {answer}");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{body}: {answer:?} ({e})"))
}

/// What a malformed request could have changed on a chain: head, latest block hash, and the
/// balance and nonce of a funded account.
fn chain_state(addr: std::net::SocketAddr, who: Address) -> Vec<serde_json::Value> {
    let call = |method: &str, params: &str| {
        rpc(addr, &format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#))
            ["result"]
            .clone()
    };
    vec![
        call("eth_blockNumber", "[]"),
        call("eth_getBlockByNumber", r#"["latest",false]"#)["hash"].clone(),
        call("eth_getBalance", &format!(r#"["{who}","latest"]"#)),
        call("eth_getTransactionCount", &format!(r#"["{who}","latest"]"#)),
    ]
}

/// Malformed requests to the chain's JSON-RPC, the node's `/metrics` endpoint and the
/// enclave's frame protocol each get their exact error (JSON-RPC code, HTTP status and body,
/// enclave `Error` frame or exit with the reason), and change nothing: the chain's head,
/// block hash, balance and nonce, the metrics page, and the enclave's ability to run a task
/// with the same keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chain_metrics_and_enclave_requests_get_exact_errors_and_change_nothing() {
    use ecld_enclave::protocol::{
        Request, Response,
        frame::{read_frame, write_frame},
    };

    // The chain.
    let devnet = ecld_devnet::spawn(ecld_devnet::DevnetConfig::ephemeral()).await.unwrap();
    let d = devnet.addr();
    let who = devnet.accounts()[0].address();
    let before = chain_state(d, who);
    let batch =
        format!("[{}]", vec![r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#; 1001].join(","));
    let cases: Vec<(&str, String, i64, &str)> = vec![
        (
            "not JSON",
            "{not json".into(),
            -32700,
            "parse error: key must be a string at line 1 column 2",
        ),
        ("empty batch", "[]".into(), -32600, "invalid request: empty batch"),
        ("batch over 1000", batch, -32600, "invalid request: batch larger than 1000"),
        (
            "method not a string",
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#.into(),
            -32600,
            r#"invalid request: "method" must be a string"#,
        ),
        (
            "unknown method",
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_frobnicate","params":[]}"#.into(),
            -32601,
            "method not found: eth_frobnicate",
        ),
        (
            "short address",
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x1234","latest"]}"#
                .into(),
            -32602,
            "invalid params: parameter 0 (address): invalid string length",
        ),
        (
            "garbage transaction",
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x02f8"]}"#
                .into(),
            -32602,
            "malformed transaction: cannot decode the signed transaction: input too short",
        ),
        (
            "transaction not hex",
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["hello"]}"#
                .into(),
            -32602,
            r#"invalid params: parameter 0 (signed transaction): invalid value: string "hello", expected a valid hex string"#,
        ),
        (
            "too many params",
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[1]}"#.into(),
            -32602,
            "invalid params: expected at most 0 parameters, got 1",
        ),
    ];
    for (what, body, code, message) in cases {
        let answer = rpc(d, &body);
        assert_eq!(answer["error"]["code"], serde_json::json!(code), "{what}: {answer}");
        assert_eq!(answer["error"]["message"], serde_json::json!(message), "{what}: {answer}");
    }
    let huge = vec![b' '; 17 << 20];
    let (status, answer) = http(d, "POST", "/", "Content-Type: application/json\r\n", &huge);
    assert_eq!(
        (status, answer.as_str()),
        (413, "Failed to buffer the request body: length limit exceeded"),
        "body over 16 MiB"
    );
    assert_eq!(chain_state(d, who), before, "a refused request changed the chain");
    devnet.shutdown().await.unwrap();

    // The node's metrics endpoint: only `GET /metrics` is served, and nothing it is sent
    // changes what it shows.
    let (m, server) =
        ecld_node::metrics::serve(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let page = http(m, "GET", "/metrics", "", b"");
    assert_eq!(page.0, 200);
    for (method, path, body) in [
        ("GET", "/", &b""[..]),
        ("GET", "/metrics/../../etc/passwd", b""),
        ("POST", "/admin", b"{\"reset\":true}"),
        ("DELETE", "/metricsx", b""),
    ] {
        let answer = http(m, method, path, "", body);
        assert_eq!(answer, (404, "not found: try /metrics\n".to_owned()), "{method} {path}");
    }
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(m).unwrap();
        s.write_all(b"\x16\x03\x01\x02\x00garbage that is not HTTP").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out:?}");
        assert!(out.ends_with("\r\n\r\nnot found: try /metrics\n"), "{out:?}");
    }
    assert_eq!(http(m, "POST", "/metrics", "", b"reset=1"), page, "POST changed /metrics");
    assert_eq!(http(m, "GET", "/metrics", "", b""), page, "a request changed /metrics");
    server.abort();

    // The enclave: a header that is no request, a request with a field it does not know, and
    // a binding with a bad address are each answered with an `Error` frame naming the
    // problem; the enclave still runs a task with the same keys afterwards. A length field
    // out of range ends the stream: exit code 1 and the reason on stderr.
    let image = Image::new();
    let module = crate::e2e_stack::repo_root().join("testdata/enclave/echo.wasm");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ecld"))
        .args(["enclave", "--module"])
        .arg(&module)
        .arg("--danger-secrets-file")
        .arg(&image.secrets_file)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut stdin, mut stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let Response::Ready(ready) = read_frame::<Response>(&mut stdout).unwrap().header else {
        panic!("no Ready frame first");
    };
    assert_eq!(ready.signer, image.signer);
    let t = task(b"", Vec::new());
    let mut run = serde_json::to_value(Request::Run { task: t.binding }).unwrap();
    run["task"]["cpu_cores"] = serde_json::json!(64);
    let mut bad_address = serde_json::to_value(Request::Run { task: t.binding }).unwrap();
    bad_address["task"]["marketplace"] = serde_json::json!("0x1234");
    for (what, header, expected) in [
        (
            "unknown request",
            serde_json::json!({"type": "format_disk"}),
            "frame header is not a valid message: unknown variant `format_disk`, expected one of `run`, `ping`, `shutdown`",
        ),
        ("unknown field", run, "frame header is not a valid message: unknown field `cpu_cores`"),
        ("bad address", bad_address, "frame header is not a valid message: invalid string length"),
    ] {
        write_frame(&mut stdin, &header, b"ignored").unwrap();
        match read_frame::<Response>(&mut stdout).unwrap().header {
            Response::Error { message } => {
                assert!(message.starts_with(expected), "{what}: {message}");
            }
            other => panic!("{what}: expected an Error frame, got {other:?}"),
        }
    }
    write_frame(&mut stdin, &Request::Ping, &[]).unwrap();
    assert_eq!(read_frame::<Response>(&mut stdout).unwrap().header, Response::Pong);
    let requester = AgeIdentity::generate();
    let input = image.encrypt(&requester.recipient(), b"still works");
    let t = task(&input, input.clone());
    write_frame(&mut stdin, &Request::Run { task: t.binding }, &input).unwrap();
    let frame = read_frame::<Response>(&mut stdout).unwrap();
    let Response::Done(done) = frame.header else { panic!("{:?}", frame.header) };
    assert_eq!(done.proof.status, StatusCode::Success);
    let sig = ProofSignature::from_slice(&done.signature).unwrap();
    let proof = done.proof.to_proof();
    proof.verify(&domain(), &sig, image.signer).unwrap();
    assert!(envelope::decrypt_bytes(&requester, &frame.blob).is_ok());
    // total = 8, header length = u32::MAX: the frame boundaries cannot be trusted any more.
    std::io::Write::write_all(&mut stdin, &[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: the frame stream to the node broke: frame of 4294967295 bytes refused: header length out of range"
        ),
        "{stderr}"
    );
}

/// Sends `signal` (`STOP`, `CONT`) to `pid`.
pub(crate) fn signal(pid: u64, signal: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid} failed");
}

/// Sends SIGCONT on drop.
pub(crate) struct Resume(pub(crate) u64);

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
    match &err {
        ecld_sdk::Error::CannotReclaim { task: t, reason } => {
            assert_eq!(*t, task);
            let deadline = c.task(task).await.unwrap().deadline;
            assert_eq!(
                *reason,
                format!(
                    "a node holds it and its deadline (unix time {deadline}) has not passed; try \
                     again later"
                )
            );
        }
        other => panic!("reclaim before the deadline: expected CannotReclaim, got {other:?}"),
    }

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
