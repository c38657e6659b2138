//! The `ecld enclave` process, driven through its stdin/stdout frames as the node drives it.

#![allow(clippy::unwrap_used)] // Test helpers unwrap like the tests they serve.

use std::{path::PathBuf, process::Stdio, time::Duration};

use ecld_crypto::{AgeIdentity, Payload, ProofDomain, ProofSignature, SignerKey, envelope};
use ecld_enclave::{
    attest::{DangerLocalSecrets, ImageSecrets},
    client::{ClientError, EnclaveProcess, Task, TaskOutcome},
    image::Measurement,
    protocol::{
        Request, Response, TaskBinding,
        frame::{read_frame, write_frame},
    },
    result::ResultEnvelope,
};
use ecld_types::{Address, B256, ImageId, StatusCode, TaskId, content_hash};
use tempfile::TempDir;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/enclave").join(name)
}

struct Image {
    dir: TempDir,
    module: PathBuf,
    enclave_key: AgeIdentity,
    signer: Address,
}

impl Image {
    fn new(module: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secrets =
            ImageSecrets { identity: AgeIdentity::generate(), signer: SignerKey::generate() };
        std::fs::write(
            dir.path().join("secrets.json"),
            DangerLocalSecrets::file_contents(&secrets).as_bytes(),
        )
        .unwrap();
        Self {
            module: testdata(module),
            enclave_key: secrets.identity,
            signer: secrets.signer.address(),
            dir,
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "enclave".into(),
            "--module".into(),
            self.module.display().to_string(),
            "--danger-secrets-file".into(),
            self.dir.path().join("secrets.json").display().to_string(),
        ]
    }

    async fn spawn(&self) -> EnclaveProcess {
        EnclaveProcess::spawn(env!("CARGO_BIN_EXE_ecld"), self.args()).await.unwrap()
    }

    fn input(&self, requester: &AgeIdentity, stdin: &[u8]) -> Vec<u8> {
        let payload =
            Payload::new(Address::repeat_byte(7), &requester.recipient(), None, stdin.to_vec())
                .unwrap();
        envelope::encrypt_bytes(&[self.enclave_key.recipient()], false, &payload.encode()).unwrap()
    }
}

/// The task a requester committed `input` with: 8 MiB of memory, 1 s of run time (fuel).
fn task(input: Vec<u8>) -> Task {
    Task {
        binding: TaskBinding {
            task_id: TaskId::new(5).unwrap(),
            image_id: ImageId(B256::repeat_byte(0x11)),
            input_hash: content_hash(&input),
            input_cid_hash: ecld_enclave::enclave::cid_hash(&input),
            memory_mb: 8,
            max_runtime_s: 1,
            deadline: 1_900_000_000,
            chain_id: 31337,
            marketplace: Address::repeat_byte(0x22),
        },
        input,
    }
}

fn verify(outcome: &TaskOutcome, signer: Address) {
    let domain = ProofDomain { chain_id: 31337, verifying_contract: Address::repeat_byte(0x22) };
    let signature = ProofSignature::from_slice(&outcome.signature).unwrap();
    outcome.proof.to_proof().verify(&domain, &signature, signer).unwrap();
    let hash = if outcome.result.is_empty() { B256::ZERO } else { content_hash(&outcome.result) };
    assert_eq!(outcome.proof.result_hash, hash);
}

fn open(outcome: &TaskOutcome, requester: &AgeIdentity) -> ResultEnvelope {
    ResultEnvelope::decode(&envelope::decrypt_bytes(requester, &outcome.result).unwrap()).unwrap()
}

#[tokio::test]
async fn enclave_process_reports_every_failure_and_stays_healthy() {
    let image = Image::new("modes.wasm");
    let mut enclave = image.spawn().await;
    let ready = enclave.ready().clone();
    assert_eq!(ready.signer, image.signer);
    assert_eq!(ready.recipient, image.enclave_key.recipient().to_string());
    assert_eq!(ready.platform, "none");
    assert_eq!(ready.measurement, Measurement::of(&std::fs::read(&image.module).unwrap()));

    let requester = AgeIdentity::generate();
    let cases: [(&[u8], StatusCode); 6] = [
        (b"t", StatusCode::ProgramError),
        (b"x", StatusCode::ProgramError),
        (b"l", StatusCode::Timeout),
        (b"m", StatusCode::ResourceLimit),
        (b"o", StatusCode::ResourceLimit),
        (b"ehello", StatusCode::Success),
    ];
    for (stdin, status) in cases {
        let outcome = enclave.run(task(image.input(&requester, stdin))).await.unwrap();
        assert_eq!(
            outcome.proof.status,
            status,
            "input {:?}: {}",
            String::from_utf8_lossy(stdin),
            outcome.message
        );
        verify(&outcome, ready.signer);
        let result = open(&outcome, &requester);
        assert_eq!(result.status, status.code());
        // After every failure the same process still runs a program correctly.
        let ok = enclave.run(task(image.input(&requester, b"estill fine"))).await.unwrap();
        assert_eq!(ok.proof.status, StatusCode::Success);
        assert_eq!(open(&ok, &requester).stdout, b"still fine");
    }
    enclave.ping().await.unwrap();
    assert!(enclave.shutdown().await.unwrap().success());
}

#[tokio::test]
async fn result_opens_for_the_requester_only() {
    let image = Image::new("echo.wasm");
    let mut enclave = image.spawn().await;
    let requester = AgeIdentity::generate();
    let outcome = enclave.run(task(image.input(&requester, b"private answer"))).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::Success);
    verify(&outcome, image.signer);
    let result = open(&outcome, &requester);
    assert_eq!((result.exit_code, result.stdout.as_slice()), (0, &b"private answer"[..]));
    assert!(envelope::decrypt_bytes(&AgeIdentity::generate(), &outcome.result).is_err());
    assert!(
        envelope::decrypt_bytes(&image.enclave_key, &outcome.result).is_err(),
        "not even the image key"
    );
}

#[tokio::test]
async fn input_mismatch_is_6_other_bytes_16_and_garbage_4() {
    let image = Image::new("echo.wasm");
    let mut enclave = image.spawn().await;
    let requester = AgeIdentity::generate();
    // The requester committed a hash its own CID's bytes do not have: its fault (paid).
    let mut lied = task(image.input(&requester, b"a"));
    lied.binding.input_hash = content_hash(b"some other ciphertext");
    let outcome = enclave.run(lied).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::InputMismatch);
    assert!(outcome.result.is_empty());
    verify(&outcome, image.signer);
    // The node sends bytes other than the requester's CID names: not the requester's fault.
    let mut swapped = task(image.input(&requester, b"a"));
    swapped.input = image.input(&requester, b"b");
    let outcome = enclave.run(swapped).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::InputUnavailable);
    assert!(outcome.result.is_empty());
    verify(&outcome, image.signer);

    let outcome = enclave.run(task(b"garbage, not an age file".to_vec())).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::InputInvalid);
    verify(&outcome, image.signer);

    let outcome = enclave.run(task(image.input(&requester, b"b"))).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::Success);
}

#[test]
fn malformed_request_frames_are_refused_and_the_enclave_goes_on() {
    let image = Image::new("echo.wasm");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ecld"))
        .args(image.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (mut stdin, mut stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    assert!(matches!(read_frame::<Response>(&mut stdout).unwrap().header, Response::Ready(_)));
    write_frame(&mut stdin, &serde_json::json!({"type": "format_disk"}), &[]).unwrap();
    match read_frame::<Response>(&mut stdout).unwrap().header {
        Response::Error { message } => {
            assert!(message.contains("not a valid message"), "{message}");
        }
        other => panic!("expected an error frame, got {other:?}"),
    }
    write_frame(&mut stdin, &Request::Ping, &[]).unwrap();
    assert_eq!(read_frame::<Response>(&mut stdout).unwrap().header, Response::Pong);
    // A length beyond the limit ends the conversation: the stream cannot be trusted.
    std::io::Write::write_all(&mut stdin, &u32::MAX.to_be_bytes()).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
}

#[tokio::test]
async fn a_module_that_cannot_run_is_a_fatal_start() {
    let image = Image::new("echo.wasm");
    let bad = image.dir.path().join("bad.wasm");
    std::fs::write(&bad, b"\0asm garbage").unwrap();
    let mut args = image.args();
    args[2] = bad.display().to_string();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ecld"));
    command.args(args).stderr(Stdio::null());
    let err = EnclaveProcess::spawn_command(command, Duration::from_secs(30)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Fatal(ref m) if m.contains("not valid WebAssembly")),
        "{err}"
    );
}

#[tokio::test]
async fn enclave_attests_to_a_real_cas_and_serves_with_the_session_keys() {
    use ecld_cas::{AdminToken, CasClient, CasConfig};
    use ecld_tee::{HexBytes, Policy, SimPlatformKey, SimPolicy};

    let dir = tempfile::tempdir().unwrap();
    let module_path = testdata("echo.wasm");
    let module = std::fs::read(&module_path).unwrap();
    let key_file = dir.path().join("sim.key");
    let platform_key = SimPlatformKey::load_or_generate(&key_file).unwrap();
    let token = AdminToken::generate();
    let cas = ecld_cas::spawn(CasConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("cas"),
        token.clone(),
    ))
    .await
    .unwrap();
    let url = format!("http://{}", cas.addr());
    let policy = Policy {
        danger_allow_sim: true,
        sim: Some(SimPolicy {
            measurement: HexBytes(*Measurement::of(&module).as_bytes()),
            platform_keys: vec![HexBytes(platform_key.public_key())],
        }),
        ..serde_json::from_str("{}").unwrap()
    };
    let session = CasClient::new(&url)
        .unwrap()
        .with_admin_token(token)
        .create_session("echo-v1", &policy)
        .await
        .unwrap();

    let args = [
        "enclave".to_owned(),
        "--module".into(),
        module_path.display().to_string(),
        "--cas".into(),
        url.clone(),
        "--session".into(),
        "echo-v1".into(),
        "--cas-identity".into(),
        session.cas_identity.to_string(),
        "--platform".into(),
        "sim".into(),
        "--sim-key".into(),
        key_file.display().to_string(),
    ];
    let mut enclave = EnclaveProcess::spawn(env!("CARGO_BIN_EXE_ecld"), &args).await.unwrap();
    let ready = enclave.ready().clone();
    assert_eq!(ready.platform, "sim");
    assert_eq!(ready.signer, session.enclave_signer);
    assert_eq!(ready.recipient, session.enclave_recipient);

    let requester = AgeIdentity::generate();
    let image_key: ecld_crypto::AgeRecipient = session.enclave_recipient.parse().unwrap();
    let payload =
        Payload::new(Address::ZERO, &requester.recipient(), None, b"attested".to_vec()).unwrap();
    let input = envelope::encrypt_bytes(&[image_key], false, &payload.encode()).unwrap();
    let outcome = enclave.run(task(input)).await.unwrap();
    assert_eq!(outcome.proof.status, StatusCode::Success);
    verify(&outcome, session.enclave_signer);
    assert_eq!(open(&outcome, &requester).stdout, b"attested");
    enclave.shutdown().await.unwrap();

    // An enclave that pins another CAS identity refuses the CAS and never becomes ready.
    let mut wrong = args.to_vec();
    wrong[8] = Address::repeat_byte(9).to_string();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ecld"));
    command.args(&wrong).stderr(Stdio::null());
    let err = EnclaveProcess::spawn_command(command, Duration::from_secs(30)).await.unwrap_err();
    assert!(matches!(err, ClientError::Fatal(ref m) if m.contains("pinned")), "{err}");
}
