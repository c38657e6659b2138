//! Runner images end to end: the user's own code travels in the encrypted payload, runs in
//! the enclave of the `wasm` or `python` runner image, and the proof names its keccak256.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::path::{Path, PathBuf};

use ecld_types::keccak256;
use serde_json::Value;

use crate::e2e_stack::{Stack, programs_dir, repo_root};

/// What the program wrote, as `ecld task run --json` reports it after decryption.
#[derive(Debug)]
struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// `ecld --json task run IMAGE --code CODE --input INPUT`, expecting exit code `exit`; returns
/// the JSON and the program's decrypted output.
fn run(stack: &Stack, image: &str, code: &Path, input: &Path, exit: i32) -> (Value, Output) {
    let out = stack.json(
        &[
            "task",
            "run",
            image,
            "--code",
            code.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--memory-mb",
            "256",
        ],
        exit,
    );
    let bytes = match (out["result"].as_str(), out["result_hex"].as_str()) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(hex)) => alloy::hex::decode(hex).unwrap(),
        (None, None) => Vec::new(),
    };
    let stderr = out["stderr"].as_str().unwrap_or_default().as_bytes().to_vec();
    (out, Output { stdout: bytes, stderr })
}

fn code_hash_of(out: &Value) -> String {
    out["code_hash"].as_str().unwrap().to_owned()
}

fn write(stack: &Stack, name: &str, bytes: &[u8]) -> PathBuf {
    let path = stack.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn wasm_runner_runs_the_users_module_and_proves_its_hash() {
    let stack = Stack::start();
    let module = programs_dir().join("hash.wasm");
    let code = std::fs::read(&module).unwrap();
    let input = write(&stack, "secret.txt", b"my private bytes");

    let (out, env) = run(&stack, "wasm", &module, &input, 0);
    assert_eq!(out["status"], 0, "{out}");
    assert_eq!(code_hash_of(&out), keccak256(&code).to_string());
    let result: Value = serde_json::from_slice(&env.stdout).unwrap();
    assert_eq!(result["length"], 16, "{result}");
    // `task verify` shows the code hash the enclave signed.
    let id = out["task"].as_u64().unwrap().to_string();
    let verified = stack.json(&["task", "verify", &id], 0);
    assert_eq!(verified["code_hash"].as_str().unwrap(), keccak256(&code).to_string());

    // Bytes that are not a WebAssembly module: CODE_INVALID (exit class 2), hash still named.
    let bogus = write(&stack, "bogus.wasm", b"#!/bin/sh\necho not wasm\n");
    let (out, env) = run(&stack, "wasm", &bogus, &input, 2);
    assert_eq!(out["status"], 5, "{out}");
    assert_eq!(code_hash_of(&out), keccak256(b"#!/bin/sh\necho not wasm\n").to_string());
    assert!(String::from_utf8_lossy(&env.stderr).contains("not valid WebAssembly"));

    // Code sent to an image that runs its own program: CODE_INVALID.
    let (out, _) = run(&stack, "stats", &module, &input, 2);
    assert_eq!(out["status"], 5, "{out}");
}

#[test]
fn python_runner_runs_scripts_with_status_per_outcome() {
    if !programs_dir().join("python.wasm").is_file() {
        eprintln!(
            "SKIPPED python_runner_runs_scripts_with_status_per_outcome: programs/out/python.wasm \
             is missing; build it with scripts/build-runners"
        );
        return;
    }
    let stack = Stack::start();
    let examples = repo_root().join("examples/python");

    // The example: statistics over a private CSV.
    let script = examples.join("stats.py");
    let (out, env) = run(&stack, "python", &script, &examples.join("salaries.csv"), 0);
    assert_eq!(out["status"], 0, "{out} {}", String::from_utf8_lossy(&env.stderr));
    assert_eq!(code_hash_of(&out), keccak256(std::fs::read(&script).unwrap()).to_string());
    let report: Value = serde_json::from_slice(&env.stdout).unwrap();
    assert_eq!(report["rows"], 10, "{report}");
    assert_eq!(report["numeric"]["salary"]["mean"], 76100.0, "{report}");
    assert_eq!(report["numeric"]["salary"]["median"], 67500.0, "{report}");
    assert_eq!(report["categories"]["department"]["sales"], 3, "{report}");

    // The other example, and stdin as well as INPUT.
    let (out, env) = run(
        &stack,
        "python",
        &examples.join("credit_score.py"),
        &examples.join("applicant.json"),
        0,
    );
    assert_eq!(out["status"], 0, "{}", String::from_utf8_lossy(&env.stderr));
    let score: Value = serde_json::from_slice(&env.stdout).unwrap();
    assert!(score["score"].as_u64().unwrap() >= 300, "{score}");
    let echo = write(&stack, "echo.py", b"import sys\nprint(sys.stdin.read().upper(), end='')\n");
    let input = write(&stack, "in.txt", b"abc\n");
    let (_, env) = run(&stack, "python", &echo, &input, 0);
    assert_eq!(env.stdout, b"ABC\n");

    // A syntax error: CODE_INVALID, the error in the encrypted diagnostic.
    let broken = write(&stack, "broken.py", b"def f(:\n    return 1\n");
    let (out, env) = run(&stack, "python", &broken, &input, 2);
    assert_eq!(out["status"], 5, "{out}");
    assert!(String::from_utf8_lossy(&env.stderr).contains("SyntaxError"), "{env:?}");

    // An uncaught exception: PROGRAM_ERROR with the traceback.
    let failing = write(
        &stack,
        "fail.py",
        b"def check(x):\n    raise ValueError('bad row ' + x)\ncheck(INPUT.strip())\n",
    );
    let (out, env) = run(&stack, "python", &failing, &input, 1);
    assert_eq!(out["status"], 1, "{out}");
    let stderr = String::from_utf8_lossy(&env.stderr);
    assert!(stderr.contains("Traceback") && stderr.contains("ValueError: bad row abc"), "{stderr}");
}

#[test]
fn js_runner_runs_scripts_with_status_per_outcome() {
    if !programs_dir().join("js.wasm").is_file() {
        eprintln!(
            "SKIPPED js_runner_runs_scripts_with_status_per_outcome: programs/out/js.wasm is \
             missing; build it with scripts/build-runners"
        );
        return;
    }
    let stack = Stack::start();
    let examples = repo_root().join("examples/js");
    let script = examples.join("sealed_bid.js");
    let (out, env) = run(&stack, "js", &script, &examples.join("bids.json"), 0);
    assert_eq!(out["status"], 0, "{out} {}", String::from_utf8_lossy(&env.stderr));
    assert_eq!(code_hash_of(&out), keccak256(std::fs::read(&script).unwrap()).to_string());
    let result: Value = serde_json::from_slice(&env.stdout).unwrap();
    assert_eq!(result["winner"], "alice", "{result}");
    assert_eq!(result["price"], 4050, "{result}");

    let input = write(&stack, "in.txt", b"abc");
    let broken = write(&stack, "broken.js", b"function (\n");
    let (out, env) = run(&stack, "js", &broken, &input, 2);
    assert_eq!(out["status"], 5, "{out}");
    assert!(String::from_utf8_lossy(&env.stderr).contains("SyntaxError"), "{env:?}");

    let failing = write(&stack, "fail.js", b"throw new TypeError('bad row ' + INPUT);\n");
    let (out, env) = run(&stack, "js", &failing, &input, 1);
    assert_eq!(out["status"], 1, "{out}");
    let stderr = String::from_utf8_lossy(&env.stderr);
    assert!(stderr.contains("TypeError") && stderr.contains("bad row abc"), "{stderr}");
}
