use alloy_primitives::Address;
use ecld_crypto::{AgeIdentity, ProofSignature, SignerKey, envelope::decrypt_bytes};
use ecld_types::TaskId;

use super::*;
use crate::runtime::{Runtime, RuntimeOptions};

macro_rules! wat {
    ($name:literal) => {
        wat::parse_str(include_str!(concat!("../../../../testdata/enclave/", $name, ".wat")))
            .unwrap()
    };
}

struct Fixture {
    enclave: Enclave,
    requester: AgeIdentity,
    signer: Address,
    _runtime: Runtime,
}

fn fixture(module: &[u8]) -> Fixture {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let program = runtime.compile(module).unwrap();
    let secrets = ImageSecrets { identity: AgeIdentity::generate(), signer: SignerKey::generate() };
    let signer = secrets.signer.address();
    let enclave = Enclave::new(program, secrets, Measurement::of(module), "none", None);
    Fixture { enclave, requester: AgeIdentity::generate(), signer, _runtime: runtime }
}

impl Fixture {
    fn input(&self, code: Option<Vec<u8>>, stdin: &[u8]) -> Vec<u8> {
        let payload = Payload::new(
            Address::repeat_byte(9),
            &self.requester.recipient(),
            code,
            stdin.to_vec(),
        )
        .unwrap();
        let image_key = self.enclave.secrets.identity.recipient();
        envelope::encrypt_bytes(&[image_key], false, &payload.encode()).unwrap()
    }

    fn run(&self, input: &[u8]) -> Answer {
        self.run_bound(input, content_hash(input))
    }

    fn run_bound(&self, input: &[u8], input_hash: B256) -> Answer {
        self.enclave.run(&TaskBinding { input_hash, ..binding(input) }, input).unwrap()
    }

    fn verify(&self, answer: &Answer) {
        let proof = answer.done.proof.to_proof();
        let signature = ProofSignature::from_slice(&answer.done.signature).unwrap();
        proof.verify(&domain(), &signature, self.signer).unwrap();
        let expected_hash =
            if answer.result.is_empty() { B256::ZERO } else { content_hash(&answer.result) };
        assert_eq!(proof.result_hash, expected_hash);
    }

    fn open(&self, answer: &Answer) -> ResultEnvelope {
        ResultEnvelope::decode(&decrypt_bytes(&self.requester, &answer.result).unwrap()).unwrap()
    }
}

/// The task a requester commits `input` with: 4 MiB of memory, 1 s of run time (fuel).
fn binding(input: &[u8]) -> TaskBinding {
    TaskBinding {
        task_id: TaskId::new(42).unwrap(),
        image_id: ImageId(B256::repeat_byte(0xaa)),
        input_hash: content_hash(input),
        input_cid_hash: cid_hash(input),
        memory_mb: 4,
        max_runtime_s: 1,
        deadline: 1_900_000_000,
        chain_id: 31337,
        marketplace: Address::repeat_byte(0xbb),
    }
}

fn domain() -> ProofDomain {
    ProofDomain { chain_id: 31337, verifying_contract: Address::repeat_byte(0xbb) }
}

#[test]
fn success_result_decrypts_for_the_requester_only_and_proof_verifies() {
    let f = fixture(&wat!("echo"));
    let input = f.input(None, b"hello enclave");
    let answer = f.run(&input);
    assert_eq!(answer.done.proof.status, StatusCode::Success);
    assert_eq!(answer.done.proof.code_hash, B256::ZERO);
    assert_eq!(answer.done.proof.input_hash, content_hash(&input));
    f.verify(&answer);
    let opened = f.open(&answer);
    assert_eq!(
        opened,
        ResultEnvelope {
            status: 0,
            exit_code: 0,
            stdout: b"hello enclave".to_vec(),
            stderr: vec![]
        }
    );
    // Neither a stranger nor the image key itself opens the result.
    assert!(decrypt_bytes(&AgeIdentity::generate(), &answer.result).is_err());
    assert!(decrypt_bytes(&f.enclave.secrets.identity, &answer.result).is_err());
}

#[test]
fn proof_does_not_verify_for_another_chain_contract_or_signer() {
    let f = fixture(&wat!("echo"));
    let answer = f.run(&f.input(None, b"x"));
    let proof = answer.done.proof.to_proof();
    let sig = ProofSignature::from_slice(&answer.done.signature).unwrap();
    let other_chain = ProofDomain { chain_id: 1, ..domain() };
    assert!(proof.verify(&other_chain, &sig, f.signer).is_err());
    assert!(proof.verify(&domain(), &sig, SignerKey::generate().address()).is_err());
    let tampered = ResultProof { status: StatusCode::InputUnavailable, ..proof };
    assert!(tampered.verify(&domain(), &sig, f.signer).is_err());
}

/// Bytes that are what the requester's CID names but not what its committed hash names are
/// the requester's fault (6, the node is paid); bytes that are not what the CID names came
/// from the node or a store (16, refund).
#[test]
fn a_wrong_input_is_blamed_on_whoever_chose_it() {
    let f = fixture(&wat!("echo"));
    let input = f.input(None, b"x");
    let answer = f.run_bound(&input, B256::repeat_byte(1));
    assert_eq!(answer.done.proof.status, StatusCode::InputMismatch);
    assert!(answer.done.proof.status.code() < StatusCode::FIRST_SYSTEM_CODE, "6 pays the node");
    assert_eq!(answer.done.proof.input_hash, B256::repeat_byte(1), "signs the hash the task names");
    assert!(answer.result.is_empty());
    assert!(answer.done.message.contains("input hash mismatch"), "{}", answer.done.message);
    f.verify(&answer);
    // The node swaps in other bytes: they are not what the requester's CID names.
    let other = f.input(None, b"y");
    let answer = f.enclave.run(&binding(&input), &other).unwrap();
    assert_eq!(answer.done.proof.status, StatusCode::InputUnavailable);
    assert!(answer.done.message.contains("not the CID the task names"), "{}", answer.done.message);
    f.verify(&answer);
    // An input the node could not fetch at all.
    let answer = f.enclave.run(&binding(&input), &[]).unwrap();
    assert_eq!(answer.done.proof.status, StatusCode::InputUnavailable);
}

/// The proof names the result's CID, as the store computes it, and the limits of the spec.
#[test]
fn the_proof_names_the_result_cid_and_the_spec() {
    let f = fixture(&wat!("echo"));
    let input = f.input(None, b"where is it");
    let answer = f.run(&input);
    let cid = ecld_store::unixfs::file_cid(&answer.result).to_string();
    assert_eq!(answer.done.result_cid, cid);
    assert_eq!(answer.done.proof.result_cid_hash, keccak256(cid.as_bytes()));
    let b = binding(&input);
    let p = answer.done.proof;
    assert_eq!(
        (p.input_cid_hash, p.memory_mb, p.max_runtime_s, p.deadline),
        (b.input_cid_hash, b.memory_mb, b.max_runtime_s, b.deadline)
    );
    f.verify(&answer);
    // Without a result, the empty CID.
    let answer = f.run(b"not an age file");
    assert!(answer.done.result_cid.is_empty());
    assert_eq!(answer.done.proof.result_cid_hash, keccak256(b""));
}

#[test]
fn garbage_input_is_4() {
    let f = fixture(&wat!("echo"));
    let answer = f.run(b"definitely not an age file");
    assert_eq!(answer.done.proof.status, StatusCode::InputInvalid);
    assert!(answer.result.is_empty());
    f.verify(&answer);
    // Encrypted to another key.
    let stranger =
        envelope::encrypt_bytes(&[AgeIdentity::generate().recipient()], false, b"x").unwrap();
    assert_eq!(f.run(&stranger).done.proof.status, StatusCode::InputInvalid);
    // Encrypted to the image, but not a payload.
    let not_payload =
        envelope::encrypt_bytes(&[f.enclave.secrets.identity.recipient()], false, b"ECLPgarbage")
            .unwrap();
    let answer = f.run(&not_payload);
    assert_eq!(answer.done.proof.status, StatusCode::InputInvalid);
    assert!(answer.done.message.contains("payload"), "{}", answer.done.message);
}

#[test]
fn code_for_an_image_that_runs_its_own_program_is_5() {
    let f = fixture(&wat!("echo"));
    let code = b"print('hi')".to_vec();
    let answer = f.run(&f.input(Some(code.clone()), b""));
    assert_eq!(answer.done.proof.status, StatusCode::CodeInvalid);
    assert_eq!(answer.done.proof.code_hash, ecld_crypto::code_hash(Some(&code)));
    f.verify(&answer);
    let opened = f.open(&answer);
    assert_eq!(opened.status, 5);
    assert!(String::from_utf8_lossy(&opened.stderr).contains("does not accept code"));
}

#[test]
fn program_failures_are_signed_with_their_status_and_the_enclave_stays_healthy() {
    for (module, status) in [
        (wat!("exit3"), StatusCode::ProgramError),
        (wat!("trap"), StatusCode::ProgramError),
        (wat!("spin"), StatusCode::Timeout),
        (wat!("grow"), StatusCode::ResourceLimit),
        (wat!("flood"), StatusCode::ResourceLimit),
    ] {
        let f = fixture(&module);
        for _ in 0..2 {
            let answer = f.run(&f.input(None, b""));
            assert_eq!(answer.done.proof.status, status);
            f.verify(&answer);
            let opened = f.open(&answer);
            assert_eq!(opened.status, status.code());
            assert!(String::from_utf8_lossy(&opened.stderr).contains("[ecld enclave] program"));
        }
    }
}

#[test]
fn tasks_for_another_image_are_refused_unsigned() {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let module = wat!("echo");
    let secrets = ImageSecrets { identity: AgeIdentity::generate(), signer: SignerKey::generate() };
    let mine = ImageId(B256::repeat_byte(0xcc));
    let enclave = Enclave::new(
        runtime.compile(&module).unwrap(),
        secrets,
        Measurement::of(&module),
        "none",
        Some(mine),
    );
    let err = enclave.run(&binding(b"x"), b"x").unwrap_err();
    assert!(matches!(err, TaskError::WrongImage { .. }), "{err}");
}

#[test]
fn ready_announces_the_public_halves() {
    let f = fixture(&wat!("echo"));
    let ready = f.enclave.ready();
    assert_eq!(ready.signer, f.signer);
    assert_eq!(ready.recipient, f.enclave.secrets.identity.recipient().to_string());
    assert_eq!(ready.measurement, Measurement::of(&wat!("echo")));
    assert!(!ready.accepts_code);
}
