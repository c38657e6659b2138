//! Runner images inside the enclave: the user's code travels in the payload, the proof
//! names its keccak256, and code that cannot run is CODE_INVALID.

use alloy_primitives::{Address, keccak256};
use ecld_crypto::{AgeIdentity, SignerKey, envelope::decrypt_bytes};
use ecld_types::TaskId;

use super::*;
use crate::{
    runner::{RUNNER_SECTION, append_custom_section, stdin_frame, wasm_runner_image},
    runtime::{Runtime, RuntimeOptions},
};

const ECHO: &str = include_str!("../../../../testdata/enclave/echo.wat");
const EXIT3: &str = include_str!("../../../../testdata/enclave/exit3.wat");
const EXIT125: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 125))))"#;

struct Fixture {
    enclave: Enclave,
    requester: AgeIdentity,
    _runtime: Runtime,
}

fn fixture(module: &[u8]) -> Fixture {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let program = runtime.compile(module).unwrap();
    let secrets = ImageSecrets { identity: AgeIdentity::generate(), signer: SignerKey::generate() };
    let enclave = Enclave::new(program, secrets, Measurement::of(module), "none", None);
    Fixture { enclave, requester: AgeIdentity::generate(), _runtime: runtime }
}

fn stdin_runner(wat_text: &str) -> Vec<u8> {
    let mut module = wat::parse_str(wat_text).unwrap();
    append_custom_section(&mut module, RUNNER_SECTION, b"stdin-v1");
    module
}

impl Fixture {
    fn run(&self, code: Option<&[u8]>, stdin: &[u8]) -> (ProofFields, Option<ResultEnvelope>) {
        let payload = Payload::new(
            Address::repeat_byte(9),
            &self.requester.recipient(),
            code.map(<[u8]>::to_vec),
            stdin.to_vec(),
        )
        .unwrap();
        let key = self.enclave.secrets.identity.recipient();
        let input = envelope::encrypt_bytes(&[key], false, &payload.encode()).unwrap();
        let binding = TaskBinding {
            task_id: TaskId::new(7).unwrap(),
            image_id: ImageId(B256::repeat_byte(0xaa)),
            input_hash: content_hash(&input),
            input_cid_hash: cid_hash(&input),
            memory_mb: 256,
            max_runtime_s: 10,
            deadline: 1_900_000_000,
            chain_id: 31337,
            marketplace: Address::repeat_byte(0xbb),
        };
        let answer = self.enclave.run(&binding, &input).unwrap();
        let envelope = (!answer.result.is_empty()).then(|| {
            ResultEnvelope::decode(&decrypt_bytes(&self.requester, &answer.result).unwrap())
                .unwrap()
        });
        (answer.done.proof, envelope)
    }
}

#[test]
fn wasm_runner_runs_user_module_and_proves_its_hash() {
    let f = fixture(&wasm_runner_image());
    assert!(f.enclave.ready().accepts_code);
    let code = wat::parse_str(ECHO).unwrap();
    let (proof, env) = f.run(Some(&code), b"private input");
    assert_eq!(proof.status, StatusCode::Success);
    assert_eq!(proof.code_hash, keccak256(&code));
    assert_eq!(env.unwrap().stdout, b"private input");
    // Second run of the same code comes from the module cache and behaves the same.
    let (proof, env) = f.run(Some(&code), b"again");
    assert_eq!(proof.status, StatusCode::Success);
    assert_eq!(env.unwrap().stdout, b"again");
    // Another module's exit code is its own.
    let exit3 = wat::parse_str(EXIT3).unwrap();
    let (proof, env) = f.run(Some(&exit3), b"");
    assert_eq!(proof.status, StatusCode::ProgramError);
    assert_eq!(proof.code_hash, keccak256(&exit3));
    assert_eq!(env.unwrap().exit_code, 3);
}

#[test]
fn wasm_runner_compiles_each_code_once_by_its_hash() {
    let f = fixture(&wasm_runner_image());
    let cache = || f.enclave.program.module_cache().unwrap();
    assert_eq!(cache(), (0, 0));
    let echo = wat::parse_str(ECHO).unwrap();
    assert_eq!(f.run(Some(&echo), b"one").0.status, StatusCode::Success);
    assert_eq!(cache(), (1, 0), "the first task compiles the module");
    let (proof, env) = f.run(Some(&echo), b"two");
    assert_eq!(proof.status, StatusCode::Success);
    assert_eq!(env.unwrap().stdout, b"two");
    assert_eq!(cache(), (1, 1), "the second task of the same code reuses it");
    // Other code is another entry; code that does not compile is not cached.
    let exit3 = wat::parse_str(EXIT3).unwrap();
    assert_eq!(f.run(Some(&exit3), b"").0.status, StatusCode::ProgramError);
    assert_eq!(f.run(Some(b"not wasm"), b"").0.status, StatusCode::CodeInvalid);
    assert_eq!(f.run(Some(b"not wasm"), b"").0.status, StatusCode::CodeInvalid);
    assert_eq!(cache(), (2, 1));
    // Images that are not `wasm-v1` runners have no module cache.
    assert_eq!(fixture(&stdin_runner(ECHO)).enclave.program.module_cache(), None);
}

#[test]
fn wasm_runner_refuses_invalid_or_missing_code() {
    let f = fixture(&wasm_runner_image());
    let garbage = b"this is not a wasm module".to_vec();
    let (proof, env) = f.run(Some(&garbage), b"x");
    assert_eq!(proof.status, StatusCode::CodeInvalid);
    assert_eq!(proof.code_hash, keccak256(&garbage));
    let env = env.unwrap();
    assert!(String::from_utf8_lossy(&env.stderr).contains("not valid WebAssembly"));
    // A valid module that is not a WASI command (no `_start`).
    let library = wat::parse_str("(module (func (export \"f\")))").unwrap();
    assert_eq!(f.run(Some(&library), b"x").0.status, StatusCode::CodeInvalid);
    // No code at all.
    let (proof, _) = f.run(None, b"x");
    assert_eq!(proof.status, StatusCode::CodeInvalid);
    assert_eq!(proof.code_hash, B256::ZERO);
}

#[test]
fn stdin_runner_gets_code_frame_and_exit_125_is_code_invalid() {
    let f = fixture(&stdin_runner(ECHO));
    assert!(f.enclave.ready().accepts_code);
    let (proof, env) = f.run(Some(b"print(INPUT)"), b"data");
    assert_eq!(proof.status, StatusCode::Success);
    assert_eq!(proof.code_hash, keccak256(b"print(INPUT)"));
    assert_eq!(env.unwrap().stdout, stdin_frame(b"print(INPUT)", b"data"));

    let f = fixture(&stdin_runner(EXIT125));
    let (proof, env) = f.run(Some(b"def ("), b"");
    assert_eq!(proof.status, StatusCode::CodeInvalid);
    assert_eq!(env.unwrap().exit_code, 125);

    let f = fixture(&stdin_runner(EXIT3));
    assert_eq!(f.run(Some(b"raise"), b"").0.status, StatusCode::ProgramError);
}

#[test]
fn fixed_program_image_refuses_code() {
    let f = fixture(&wat::parse_str(ECHO).unwrap());
    assert!(!f.enclave.ready().accepts_code);
    let (proof, env) = f.run(Some(b"code"), b"x");
    assert_eq!(proof.status, StatusCode::CodeInvalid);
    assert_eq!(proof.code_hash, keccak256(b"code"));
    assert!(String::from_utf8_lossy(&env.unwrap().stderr).contains("does not accept code"));
    // Exit 125 is an ordinary program error for an image that is not a runner.
    let f = fixture(&wat::parse_str(EXIT125).unwrap());
    assert_eq!(f.run(None, b"").0.status, StatusCode::ProgramError);
}
