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
